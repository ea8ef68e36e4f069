"""Tolerance policy: when does a tensor pass?

Default (issue #2): a tensor passes when ``cos >= 0.99`` and ``|mean delta| <= 0.5 LSB``.
Identical codes are ``exact``. A tensor whose only differences are ±1 LSB on a small
share of elements with no bias is rounding-tie noise and passes with that reason. Global
and per-tensor overrides: ``cos=0.999,bias=0.25,max=2`` (``max`` bounds max |delta| LSB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from qprobe.errors import InputError
from qprobe.metrics import LsbMetrics, StMetrics

EXACT, PASS, FAIL = "exact", "pass", "fail"


@dataclass(frozen=True)
class Tolerance:
    min_cos: float = 0.99
    max_abs_bias_lsb: float = 0.5
    max_abs_lsb: float | None = None

    def with_text(self, text: str) -> Tolerance:
        """Apply ``cos=..,bias=..,max=..`` overrides."""
        keys = {"cos": "min_cos", "bias": "max_abs_bias_lsb", "max": "max_abs_lsb"}
        t = self
        for part in filter(None, (p.strip() for p in text.split(","))):
            k, sep, v = part.partition("=")
            if not sep or k.strip() not in keys:
                raise InputError(f"bad tolerance {part!r}; use cos=0.99,bias=0.5,max=2")
            try:
                t = replace(t, **{keys[k.strip()]: float(v)})
            except ValueError as e:
                raise InputError(f"tolerance {part!r}: {v!r} is not a number") from e
        return t


@dataclass(frozen=True)
class TolerancePolicy:
    default: Tolerance = field(default_factory=Tolerance)
    per_tensor: Mapping[str, Tolerance] = field(default_factory=dict)

    def for_tensor(self, name: str) -> Tolerance:
        return self.per_tensor.get(name, self.default)

    def judge(self, name: str, st: StMetrics, lsb: LsbMetrics | None) -> tuple[str, str]:
        """(verdict, reason) for one tensor."""
        tol = self.for_tensor(name)
        if lsb is not None and lsb.n and lsb.exact_share == 1.0:
            return EXACT, "identical codes"
        if lsb is None and st.n and st.rmse == 0.0:
            return EXACT, "identical values"
        problems = []
        if not st.cos >= tol.min_cos:  # also catches NaN
            problems.append(f"cos {st.cos:.4f} < {tol.min_cos}")
        if lsb is not None and abs(lsb.mean_delta_lsb) > tol.max_abs_bias_lsb:
            side = "low" if lsb.mean_delta_lsb > 0 else "high"
            problems.append(f"biased {side} by {abs(lsb.mean_delta_lsb):.2f} LSB")
        if lsb is not None and tol.max_abs_lsb is not None and lsb.max_abs_lsb > tol.max_abs_lsb:
            problems.append(f"max |delta| {lsb.max_abs_lsb:.0f} LSB > {tol.max_abs_lsb:g}")
        if problems:
            return FAIL, "; ".join(problems)
        if lsb is not None and lsb.big_share == 0.0:
            return PASS, f"±1 LSB rounding-tie noise on {100 * lsb.one_lsb_share:.2f}%"
        return PASS, "within tolerance"

    def to_json(self) -> dict[str, Any]:
        return {
            "default": vars(self.default),
            "per_tensor": {k: vars(v) for k, v in self.per_tensor.items()},
        }


def parse_policy(default: str | None, per_tensor: list[str] | None) -> TolerancePolicy:
    """Build a policy from CLI text: ``--tol cos=0.99,bias=0.5`` and ``--tol-tensor NAME:cos=...``."""
    base = Tolerance().with_text(default or "")
    per: dict[str, Tolerance] = {}
    for item in per_tensor or []:
        name, sep, text = item.partition(":")
        if not sep or not name:
            raise InputError(f"bad per-tensor tolerance {item!r}; use TENSOR:cos=0.99,bias=0.5")
        per[name] = base.with_text(text)
    return TolerancePolicy(base, per)
