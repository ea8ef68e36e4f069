"""Where a target computes an op correctly, as the rewrite passes need it: operand-scale ratios.

``RatioEnvelope`` mirrors the ``Envelope`` of the explain contract (CONTRACTS.md) in the
few fields a pass reads: the closed-open ranges of the operand ratio (operand scale /
output scale) where the target is exact, the first unsafe ratio above 1.0 and a sentence
saying so. ``aim()`` is the ratio a pass steers an operand to: just inside the top of the
safe range that holds 1.0 (``MARGIN`` below its end, so that float32 rounding of a scale
cannot put it on the boundary).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MARGIN = 0.03


@dataclass(frozen=True)
class RatioEnvelope:
    op_class: str
    safe: tuple[tuple[float, float], ...]
    boundary: float | None = None
    statement: str = ""

    @classmethod
    def unbounded(cls, op_class: str) -> RatioEnvelope:
        """No known limit: every ratio is taken as safe."""
        return cls(op_class, ((0.0, math.inf),), None, f"{op_class}: no ratio limit known")

    def contains(self, value: float) -> bool:
        return any(lo <= value < hi for lo, hi in self.safe)

    def home(self) -> tuple[float, float] | None:
        """The safe range that holds ratio 1.0 (an operand at the output's scale)."""
        return next(((lo, hi) for lo, hi in self.safe if lo <= 1.0 < hi), None)

    def aim(self) -> float:
        """The largest ratio a pass should steer an operand to (inf: no limit)."""
        home = self.home()
        if home is None:
            return 1.0
        lo, hi = home
        if math.isinf(hi):
            return math.inf
        target = hi * (1.0 - MARGIN)
        return target if target > lo else 0.5 * (lo + hi)

    def limit_text(self) -> str:
        home = self.home()
        if home is None:
            return "no safe ratio range holds 1.0"
        lo, hi = home
        return f"safe for ratios in [{lo:.3g}, {hi:.4g})" if not math.isinf(hi) else f"safe for ratios >= {lo:.3g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "op_class": self.op_class,
            "parameter": "operand_ratio",
            "safe": [[lo, None if math.isinf(hi) else hi] for lo, hi in self.safe],
            "boundary": self.boundary,
            "statement": self.statement,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RatioEnvelope:
        safe = tuple((float(lo), math.inf if hi is None else float(hi)) for lo, hi in d["safe"])
        b = d.get("boundary")
        return cls(str(d["op_class"]), safe, None if b is None else float(b), str(d.get("statement", "")))
