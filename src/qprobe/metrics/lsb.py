"""Errors in units of the quantization step (LSB) of the reference tensor.

``delta = (ref - target) / scale`` with the same sign convention as ST's ``mean``: a
target biased low gives a positive mean delta. For integer codes the delta is exact
(``ref_code - target_code``). Counts are kept so that batches merge exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qprobe.metrics.st import json_float
from qprobe.serde import plain
from qprobe.tensors import QuantParams

HIST_LIMIT = 8  # histogram bins -8..8; larger deltas land in the end bins


@dataclass(frozen=True)
class LsbMetrics:
    n: int
    exact_share: float  # |delta| < 0.5 LSB (== 0 for codes)
    max_abs_lsb: float
    mean_delta_lsb: float  # mean(ref - target) in LSB; > 0 means the target is low
    one_lsb_share: float  # 0.5 <= |delta| < 1.5: rounding-tie noise
    big_share: float  # |delta| >= 1.5 LSB
    target_saturated_share: float  # target codes at qmin/qmax where the reference is not
    histogram: tuple[int, ...]  # counts of round(delta) clipped to [-HIST_LIMIT, HIST_LIMIT]

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))  # non-finite values (no samples) become null

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LsbMetrics:
        floats = {k: json_float(d[k]) for k in (
            "exact_share", "max_abs_lsb", "mean_delta_lsb", "one_lsb_share", "big_share", "target_saturated_share")}
        return cls(n=int(d["n"]), histogram=tuple(int(v) for v in d["histogram"]), **floats)


class LsbAccumulator:
    """Streaming LSB metrics for one tensor with known quantization parameters."""

    def __init__(self, quant: QuantParams) -> None:
        self.quant = quant
        self._n = 0
        self._exact = 0
        self._one = 0
        self._big = 0
        self._sum = 0.0
        self._max = 0.0
        self._sat = 0
        self._hist = np.zeros(2 * HIST_LIMIT + 1, dtype=np.int64)

    def add(self, ref: np.ndarray, target: np.ndarray) -> None:
        """``ref``/``target`` are codes (integer arrays) or real values (floats)."""
        r, t = np.asarray(ref), np.asarray(target)
        if t.shape != r.shape:
            t = t.reshape(r.shape)
        if np.issubdtype(r.dtype, np.integer) and np.issubdtype(t.dtype, np.integer):
            delta_i = r.astype(np.int32) - t.astype(np.int32)  # exact for codes up to 16 bits
            q = self.quant
            at_rail = (t == q.qmin) | (t == q.qmax)
            self._sat += int(np.count_nonzero(at_rail & (delta_i != 0)))
            a_i = np.abs(delta_i)
            self._add_counts(a_i == 0, a_i == 1, a_i >= 2, float(delta_i.sum(dtype=np.int64)), a_i)
            bins: np.ndarray = np.clip(delta_i, -HIST_LIMIT, HIST_LIMIT) + HIST_LIMIT
        else:
            scale = self.quant.scale_array(r.ndim).astype(np.float64)
            delta = (r.astype(np.float64) - t.astype(np.float64)) / scale
            a = np.abs(delta)
            self._add_counts(a < 0.5, (a >= 0.5) & (a < 1.5), a >= 1.5, float(np.sum(delta)), a)
            bins = np.clip(np.rint(delta), -HIST_LIMIT, HIST_LIMIT).astype(np.int64) + HIST_LIMIT
        self._hist += np.bincount(bins.reshape(-1), minlength=2 * HIST_LIMIT + 1)

    def add_code_counts(self, ref: np.ndarray, target: np.ndarray, counts: np.ndarray) -> None:
        """Code pairs ``(ref[i], target[i])`` seen ``counts[i]`` times each (1-D integer arrays)."""
        delta = ref.astype(np.int64) - target.astype(np.int64)
        a = np.abs(delta)
        q = self.quant
        rail = ((target == q.qmin) | (target == q.qmax)) & (delta != 0)
        self._sat += int(counts[rail].sum())
        self._n += int(counts.sum())
        self._exact += int(counts[a == 0].sum())
        self._one += int(counts[a == 1].sum())
        self._big += int(counts[a >= 2].sum())
        self._sum += float(np.dot(counts, delta))
        if a.size:
            self._max = max(self._max, float(np.max(a)))
        bins = np.clip(delta, -HIST_LIMIT, HIST_LIMIT) + HIST_LIMIT
        self._hist += np.bincount(bins, weights=counts, minlength=2 * HIST_LIMIT + 1).astype(np.int64)

    def add_exact(self, n: int) -> None:
        """``n`` code pairs with a delta of zero."""
        self._n += n
        self._exact += n
        self._hist[HIST_LIMIT] += n

    def _add_counts(self, exact: np.ndarray, one: np.ndarray, big: np.ndarray, total: float, a: np.ndarray) -> None:
        self._n += int(a.size)
        self._exact += int(np.count_nonzero(exact))
        self._one += int(np.count_nonzero(one))
        self._big += int(np.count_nonzero(big))
        self._sum += total
        if a.size:
            self._max = max(self._max, float(np.max(a)))

    def merge(self, other: LsbAccumulator) -> LsbAccumulator:
        """Add the samples ``other`` accumulated (disjoint from ours); returns self."""
        for name in ("_n", "_exact", "_one", "_big", "_sum", "_sat"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self._max = max(self._max, other._max)
        self._hist += other._hist
        return self

    def result(self) -> LsbMetrics:
        n = self._n
        if n == 0:
            return LsbMetrics(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, ())
        return LsbMetrics(
            n=n,
            exact_share=self._exact / n,
            max_abs_lsb=self._max,
            mean_delta_lsb=self._sum / n,
            one_lsb_share=self._one / n,
            big_share=self._big / n,
            target_saturated_share=self._sat / n,
            histogram=tuple(int(v) for v in self._hist),
        )
