"""Metrics of 8-bit code pairs from a joint histogram: one integer pass per batch.

When both sides of a tensor are 8-bit codes of one per-tensor quantization, every metric
(ST's, on the float32-dequantized values, and the LSB metrics, on the integer deltas) is a
function of the pair ``(ref code, target code)``. ``CodePairs.add`` counts the pairs of a
batch (one uint16 index array and one ``bincount``, or a 256-bin count of the reference
codes when both sides are identical: no float temporaries); ``st`` and ``lsb``
turn the 256 x 256 counts into a ``StAccumulator`` and an ``LsbAccumulator`` with the same
formulas as the element-wise path (``StAccumulator.add_weighted``,
``LsbAccumulator.add_code_counts``), summed over the distinct pairs, so results equal the
element-wise ones up to float summation order. Counts merge exactly.
"""

from __future__ import annotations

import numpy as np

from qprobe.metrics.lsb import LsbAccumulator
from qprobe.metrics.st import StAccumulator
from qprobe.tensors import QuantParams

CODE_DTYPES = ("int8", "uint8")
LEVELS = 256


def code_pairs_apply(quant: QuantParams | None, ref: np.ndarray, tgt: np.ndarray) -> bool:
    """Whether ``(ref, tgt)`` can be counted as code pairs of ``quant``."""
    return (quant is not None and quant.per_tensor and quant.dtype in CODE_DTYPES
            and ref.dtype == np.dtype(quant.dtype) and tgt.dtype == ref.dtype)


class CodePairs:
    """Counts of (reference code, target code) over the samples seen, for one tensor."""

    def __init__(self, quant: QuantParams) -> None:
        self.quant = quant
        self.counts = np.zeros(LEVELS * LEVELS, dtype=np.int64)

    def add(self, ref: np.ndarray, tgt: np.ndarray) -> None:
        # pairs indexed by the codes' bytes, ref << 8 | tgt (int8 codes -128..-1 land on 128..255
        # of their byte; ``_pairs`` maps them back)
        r8, t8 = ref.reshape(-1).view(np.uint8), tgt.reshape(-1).view(np.uint8)
        if np.array_equal(r8, t8):  # every pair on the diagonal (r, r): a 256-bin count (~2x faster)
            self.counts[::LEVELS + 1] += np.bincount(r8, minlength=LEVELS)
            return
        index = np.left_shift(r8, 8, dtype=np.uint16)
        np.bitwise_or(index, t8, out=index)
        self.counts += np.bincount(index, minlength=LEVELS * LEVELS)

    def merge(self, other: CodePairs) -> CodePairs:
        self.counts += other.counts
        return self

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def _pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reference codes, target codes, counts) of the pairs seen."""
        nz = np.flatnonzero(self.counts)
        r, t = nz >> 8, nz & (LEVELS - 1)
        if self.quant.qmin < 0:  # int8: the uint8 view back to signed codes
            r, t = np.where(r >= 128, r - LEVELS, r), np.where(t >= 128, t - LEVELS, t)
        return r, t, self.counts[nz]

    def st(self, ddof: int = 1) -> StAccumulator:
        """ST's metrics of the pairs, dequantized in float32 with the reference's params as ST does."""
        acc = StAccumulator(ddof=ddof)
        r, t, w = self._pairs()
        if w.size:
            acc.add_weighted(self.quant.dequantize_f32(r), self.quant.dequantize_f32(t), w)
        return acc

    def lsb(self) -> LsbAccumulator:
        acc = LsbAccumulator(self.quant)
        r, t, w = self._pairs()
        if w.size:
            acc.add_code_counts(r, t, w)
        return acc
