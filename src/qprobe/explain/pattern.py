"""The shape of the target's error: where it sits and what it depends on (no hypothesis needed).

Delta = reference - target, in LSB (ST's sign). ``consistency``: the share of outputs equal
to the most common output among the elements with the same inputs (Add/Sub: the same
operand pair; Concat: the same input code; Conv/Gemm: the same accumulator in the same
channel); an arithmetic unit, however wrong, is a function of its inputs and scores 1.0,
while memory or DMA corruption does not. Error rates are given per quartile of the
expected magnitude, at tensor borders against the interior (spatial axes 2 and up), and
per quarter of the samples in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qprobe.explain.evidence import exact_real
from qprobe.explain.observe import Observation
from qprobe.explain.opspec import GroupSpec


@dataclass(frozen=True)
class Pattern:
    n: int
    exact_share: float
    histogram: dict[str, int]
    one_lsb_share: float  # of the differing outputs, the share off by exactly 1
    tie_share: float | None  # of the differing outputs, the share whose exact value is a rounding tie
    consistency: float | None
    magnitude_rates: tuple[float, ...]  # per non-empty quartile of |expected - zo|
    border_share: float | None  # of the differing outputs, the share at a tensor border
    border_fraction: float | None  # of all outputs, the share at a tensor border
    sample_rates: tuple[float, ...]

    @property
    def error_share(self) -> float:
        return 1.0 - self.exact_share

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n, "exact_share": self.exact_share, "histogram": self.histogram,
            "one_lsb_share": self.one_lsb_share, "tie_share": self.tie_share, "consistency": self.consistency,
            "magnitude_rates": list(self.magnitude_rates), "border_share": self.border_share,
            "border_fraction": self.border_fraction, "sample_rates": list(self.sample_rates),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Pattern:
        return cls(int(d["n"]), float(d["exact_share"]), dict(d["histogram"]), float(d["one_lsb_share"]),
                   d["tie_share"], d["consistency"], tuple(d["magnitude_rates"]), d["border_share"],
                   d["border_fraction"], tuple(d["sample_rates"]))


def histogram(delta: np.ndarray, span: int = 3) -> dict[str, int]:
    out = {f"<-{span}": int((delta < -span).sum())}
    for v in range(-span, span + 1):
        out[str(v)] = int((delta == v).sum())
    out[f">{span}"] = int((delta > span).sum())
    return out


def consistency(key: np.ndarray, observed: np.ndarray) -> float:
    joint = key.astype(np.int64).reshape(-1) * 131072 + (observed.astype(np.int64).reshape(-1) + 65536)
    joint_keys, counts = np.unique(joint, return_counts=True)
    groups = joint_keys // 131072
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return float(np.maximum.reduceat(counts, starts).sum()) / max(observed.size, 1)


def _concat_key(obs: Observation, gs: GroupSpec) -> np.ndarray:
    axis = int(gs.spec.attr("axis", 0)) % obs.observed.ndim
    xs = [gs.operand(i, obs.inputs) for i, _q in gs.quantized_inputs]
    sizes = np.cumsum([x.shape[axis] for x in xs])[:-1]
    parts = [k * 65536 + np.broadcast_to(x, o.shape).astype(np.int64) + 32768
             for k, (x, o) in enumerate(zip(xs, np.split(obs.observed, sizes, axis=axis), strict=True))]
    return np.concatenate(parts, axis=axis)


def _border(shape: tuple[int, ...]) -> np.ndarray | None:
    axes = [a for a in range(2, len(shape)) if shape[a] > 2]
    if not axes:
        return None
    mask = np.zeros(shape, dtype=bool)
    for a in axes:
        idx = [slice(None)] * len(shape)
        for edge in (0, shape[a] - 1):
            idx[a] = slice(edge, edge + 1)
            mask[tuple(idx)] = True
    return mask


def _rates(err: np.ndarray, groups: np.ndarray, n: int) -> tuple[float, ...]:
    """The error rate of each non-empty group."""
    return tuple(float(err[groups == g].mean()) for g in range(n) if (groups == g).any())


def pattern(obs: Observation, gs: GroupSpec) -> Pattern:
    delta = obs.expected.astype(np.int64) - obs.observed.astype(np.int64)
    err = delta != 0
    n_err = int(err.sum())
    found = exact_real(obs, gs)
    key = found[1] if found is not None else (_concat_key(obs, gs) if gs.spec.op_type == "Concat" else None)
    ties = None
    if found is not None and n_err:
        frac = found[0] - np.floor(found[0])
        ties = float((np.abs(frac - 0.5) < 1e-7)[err].mean())
    mag = np.abs(obs.expected.astype(np.int64) - gs.spec.out_q.z)
    edges = np.quantile(mag, [0.25, 0.5, 0.75]) if mag.size else np.zeros(3)
    border = _border(obs.observed.shape)
    per_sample = err.reshape(err.shape[0], -1).mean(axis=1) if err.ndim and err.shape[0] else np.zeros(0)
    quarter = (np.arange(per_sample.size) * 4) // max(per_sample.size, 1)
    return Pattern(
        n=int(delta.size), exact_share=1.0 - n_err / max(delta.size, 1), histogram=histogram(delta),
        one_lsb_share=float((np.abs(delta[err]) == 1).mean()) if n_err else 0.0, tie_share=ties,
        consistency=None if key is None else consistency(key, obs.observed),
        magnitude_rates=_rates(err.reshape(-1), np.searchsorted(edges, mag.reshape(-1), side="right"), 4),
        border_share=None if border is None or not n_err else float(border[err].mean()),
        border_fraction=None if border is None else float(border.mean()),
        sample_rates=_rates(per_sample, quarter, min(4, per_sample.size)),
    )
