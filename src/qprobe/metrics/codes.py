"""Metrics of 8-bit code pairs: two cheap integer passes per batch, no histogram of the bulk.

When both sides of a tensor are 8-bit codes of one per-tensor quantization, every metric
(ST's, on the dequantized values, and the LSB metrics, on the integer deltas) is a function of
the pairs ``(ref code, target code)``. Between a reference and a target most pairs agree
(ort against ort-fused: 99 % of the elements of a typical tensor), so ``CodePairs.add``
keeps two exact integer summaries per batch:

* the pairs that *differ*, counted by ``(ref, target)`` (a few hundred elements per batch,
  gathered with one comparison and ``flatnonzero``);
* the count, sum and sum of squares of *all* reference codes (``code_sums``: float32 rows of
  256 codes and two matrix-vector products, exact because every partial sum stays below 2^24).

The agreeing pairs are then "all reference codes minus the differing ones": their count, sum
and sum of squares are exact integers, and their values enter ST's metrics as
``s * (c - z)`` dequantized once from those integers (a difference of zero, a reference equal
to the target). The differing pairs are dequantized in float32 as ST does
(``QuantParams.dequantize_f32``). So the differing part equals the element-wise path up to
float summation order and the agreeing part is exact: it differs from float32 dequantization by
at most half a float32 ulp per value (relative 6e-8), below what float32 can show. The LSB
metrics are exact counts. Everything merges exactly (integers).

A numpy histogram of every pair (``np.bincount`` of a 16-bit index) cost 2-3 ns per element
on the TCN's tensors; the two passes here about 1 ns.
"""

from __future__ import annotations

import numpy as np

from qprobe.metrics.lsb import LsbAccumulator
from qprobe.metrics.st import StAccumulator
from qprobe.tensors import QuantParams

CODE_DTYPES = ("int8", "uint8")
LEVELS = 256
ROW = 256  # codes per float32 row of ``code_sums``: 256 * 255**2 < 2**24, so every row sum is exact
_ONES = np.ones(ROW, dtype=np.float32)
DENSE = 8192  # from this many differing pairs in a batch a bincount beats np.add.at


def code_pairs_apply(quant: QuantParams | None, ref: np.ndarray, tgt: np.ndarray) -> bool:
    """Whether ``(ref, tgt)`` can be counted as code pairs of ``quant``."""
    return (quant is not None and quant.per_tensor and quant.dtype in CODE_DTYPES
            and ref.dtype == np.dtype(quant.dtype) and tgt.dtype == ref.dtype)


def code_sums(codes: np.ndarray) -> tuple[int, int]:
    """``(sum(c), sum(c * c))`` of 8-bit codes, exact.

    The bulk goes as float32 rows of ``ROW`` codes through two matrix-vector products: each
    row's partial sums are integers below 2^24 (exact in float32 in any order, so any BLAS
    thread count gives the same), and the row sums add up exactly in float64."""
    x = codes.reshape(-1)
    bulk = x.size - x.size % ROW
    s1 = s2 = 0
    if bulk:
        rows = x[:bulk].astype(np.float32).reshape(-1, ROW)
        s1 = int(np.sum(rows @ _ONES, dtype=np.float64))
        np.multiply(rows, rows, out=rows)
        s2 = int(np.sum(rows @ _ONES, dtype=np.float64))
    if bulk < x.size:
        tail = x[bulk:].astype(np.int64)
        s1 += int(tail.sum())
        s2 += int(np.dot(tail, tail))
    return s1, s2


class CodePairs:
    """One tensor's code pairs over the samples seen: the differing pairs counted by
    ``(ref, target)`` byte index (``ref << 8 | target``, int8 codes -128..-1 on 128..255 of their
    byte), and the count, sum and sum of squares of every reference code (exact integers)."""

    def __init__(self, quant: QuantParams) -> None:
        self.quant = quant
        self.differing = np.zeros(LEVELS * LEVELS, dtype=np.int64)
        self.n = 0
        self.code_sum = 0
        self.code_sq_sum = 0
        self._found: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # _differing's, until a change

    def add(self, ref: np.ndarray, tgt: np.ndarray) -> None:
        self._found = None
        r, t = ref.reshape(-1), tgt.reshape(-1)
        at = np.flatnonzero(r != t)
        if at.size:
            index = np.left_shift(r[at].view(np.uint8), 8, dtype=np.uint16)
            np.bitwise_or(index, t[at].view(np.uint8), out=index)
            if at.size < DENSE:
                np.add.at(self.differing, index, 1)
            else:
                self.differing += np.bincount(index, minlength=LEVELS * LEVELS)
        s1, s2 = code_sums(r)
        self.n += int(r.size)
        self.code_sum += s1
        self.code_sq_sum += s2

    def merge(self, other: CodePairs) -> CodePairs:
        self._found = None
        self.differing += other.differing
        self.n += other.n
        self.code_sum += other.code_sum
        self.code_sq_sum += other.code_sq_sum
        return self

    def _differing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reference codes, target codes, counts) of the differing pairs seen (found once for
        ``st`` and ``lsb``)."""
        if self._found is None:
            nz = np.flatnonzero(self.differing != 0)  # a boolean mask: 5x faster than nonzero of int64
            r, t = nz >> 8, nz & (LEVELS - 1)
            if self.quant.qmin < 0:  # int8: the uint8 view back to signed codes
                r, t = np.where(r >= 128, r - LEVELS, r), np.where(t >= 128, t - LEVELS, t)
            self._found = (r, t, self.differing[nz])
        return self._found

    def _agreeing(self, r: np.ndarray, w: np.ndarray) -> tuple[int, int, int]:
        """Count, sum and sum of squares of the reference codes where both sides agree: every
        reference code minus the differing pairs' (``r`` seen ``w`` times each)."""
        wi = w.astype(np.int64)
        ri = r.astype(np.int64)
        return (self.n - int(wi.sum()), self.code_sum - int(np.dot(wi, ri)),
                self.code_sq_sum - int(np.dot(wi, ri * ri)))

    def st(self, ddof: int = 1) -> StAccumulator:
        """ST's metrics of the pairs: the differing ones dequantized in float32 with the
        reference's params as ST does, the agreeing ones from their exact integer sums."""
        acc = StAccumulator(ddof=ddof)
        r, t, w = self._differing()
        if w.size:
            acc.add_weighted(self.quant.dequantize_f32(r), self.quant.dequantize_f32(t), w)
        n, s1, s2 = self._agreeing(r, w)
        if n:
            s, z = float(np.float32(self.quant.scale[0])), int(self.quant.zero_point[0])
            a = s1 - n * z  # sum(c - z), exact
            b = s2 - 2 * z * s1 + n * z * z  # sum((c - z)**2), exact
            acc.add_identical(n, s * (a / n), s * s * ((n * b - a * a) / n), s * s * b)
        return acc

    def lsb(self) -> LsbAccumulator:
        acc = LsbAccumulator(self.quant)
        r, t, w = self._differing()
        if w.size:
            acc.add_code_counts(r, t, w)
        acc.add_exact(self._agreeing(r, w)[0])
        return acc
