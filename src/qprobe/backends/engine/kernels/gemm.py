"""Gemm family: MatMul and Gemm (QDQ), QLinearMatMul, QGemm, MatMulInteger, float versions.

Integer path: ``acc = (A - za) @ (B - zb) (+ bias)``, exact, summed through float BLAS
(float32 while every partial sum stays below 2**24, float64 otherwise). Knobs read:
``acc_bits``, ``acc_overflow``, then the requantizer's ``scale``, ``multiplier_bits``,
``rounding``, ``zero_point`` with the per-column multiplier ``sa * sb[n] / sy``.
Gemm's integer path needs ``alpha == 1`` and ``beta == 1``; other values run in float.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.base import (
    Kernel,
    OpSpec,
    QType,
    Ungroupable,
    centered,
    require_per_tensor,
)
from qprobe.backends.engine.kernels.conv import acc_bound, exact_dtype, int_bias, x_bound
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.requant import Ratio, Requantizer


def exact_matmul(a: np.ndarray, b: np.ndarray, a_bound: int, b_colsum: int | None = None) -> np.ndarray:
    """``a @ b`` of integer arrays, exact, through float BLAS."""
    colsum = int(np.abs(b).sum(axis=-2).max(initial=0)) if b_colsum is None else b_colsum
    bound = a_bound * colsum
    if bound >= 2**53:
        return np.matmul(a.astype(object), b.astype(object)).astype(np.int64)
    dt = np.float32 if bound < 2**24 else np.float64
    return np.rint(np.matmul(a.astype(dt), b.astype(dt))).astype(np.int64)


def _column_axis_ok(q: QType, ndim: int, col_axis: int) -> bool:
    return q.per_tensor or (q.axis is not None and q.axis % ndim == col_axis % ndim)


class _Rhs:
    """The right-hand operand, centered, prepared once when constant."""

    def __init__(self, spec: OpSpec, index: int, transpose: bool) -> None:
        self.q = spec.q(index)
        self.transpose = transpose
        const = spec.const(index)
        self.const = None if const is None else self._prep(const)
        self.colsum = None if self.const is None else int(np.abs(self.const).sum(axis=-2).max(initial=0))

    def _prep(self, b: np.ndarray) -> np.ndarray:
        bc = centered(b, self.q)
        return np.swapaxes(bc, -1, -2) if self.transpose else bc

    def value(self, b: np.ndarray | None) -> np.ndarray:
        if self.const is not None:
            return self.const
        assert b is not None
        return self._prep(b)


def _lhs(a: np.ndarray, q: QType, trans: bool) -> np.ndarray:
    ac = centered(a, q)
    return np.swapaxes(ac, -1, -2) if trans else ac


def build_matmul_int(spec: OpSpec) -> Kernel:
    """Quantized MatMul (QDQ) and QLinearMatMul: per-tensor A, per-tensor or per-column B."""
    require_per_tensor(spec, 0)
    aq, yq, num = spec.q(0), spec.out_q, spec.numerics
    rhs = _Rhs(spec, 1, transpose=False)
    b0 = spec.const(1)
    if not _column_axis_ok(rhs.q, b0.ndim if b0 is not None else 2, -1):
        raise Ungroupable("B is quantized per axis on an axis other than its columns")
    requant = Requantizer(num, Ratio.of([aq.scale, rhs.q.scale], [yq.scale]), yq.zero_point, yq.qmin, yq.qmax)
    a_bound = x_bound(aq)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a = args[0]
        assert a is not None
        acc = exact_matmul(_lhs(a, aq, False), rhs.value(args[1]), a_bound, rhs.colsum)
        acc = nx.limit(acc, num.acc_bits, num.acc_overflow)
        return [requant(acc, channel_axis=acc.ndim - 1)]

    return run


def build_matmul_integer(spec: OpSpec) -> Kernel:
    """MatMulInteger: int32 ``(A - za) @ (B - zb)`` (acc_bits/acc_overflow applied)."""
    aq, num = spec.q(0), spec.numerics
    rhs = _Rhs(spec, 1, transpose=False)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a = args[0]
        assert a is not None
        acc = exact_matmul(centered(a, aq), rhs.value(args[1]), x_bound(aq), rhs.colsum)
        return [nx.limit(acc, num.acc_bits, num.acc_overflow).astype(np.int32)]

    return run


def build_gemm_int(spec: OpSpec) -> Kernel:
    """Quantized Gemm (QDQ) and QGemm: ``A' @ B' + C`` with int32 C at scale ``sa * sb``."""
    require_per_tensor(spec, 0)
    if float(spec.attr("alpha", 1.0)) != 1.0 or (float(spec.attr("beta", 1.0)) != 1.0 and len(spec.inputs) > 2):
        raise Ungroupable("alpha or beta is not 1")
    aq, yq, num = spec.q(0), spec.out_q, spec.numerics
    trans_a, trans_b = bool(spec.attr("transA", 0)), bool(spec.attr("transB", 0))
    rhs = _Rhs(spec, 1, transpose=trans_b)
    if not _column_axis_ok(rhs.q, 2, 0 if trans_b else 1):
        raise Ungroupable("B is quantized per axis on an axis other than its output columns")
    if rhs.const is None:
        raise Ungroupable("B is not constant")
    b_const = rhs.const
    cols = b_const.shape[-1]
    ratio = Ratio.of([aq.scale, rhs.q.scale], [yq.scale])
    bias = _gemm_bias(spec, ratio, cols)
    lo, hi = spec.info.get("clamp") or (yq.qmin, yq.qmax)  # a folded Relu/Clip narrows the final clamp
    spec.info["clamped"] = True
    requant = Requantizer(num, ratio, yq.zero_point, int(lo), int(hi))
    a_bound = x_bound(aq)
    fast = _raw_code_gemm(aq, b_const, bias, num, a_bound) if not trans_a else None

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a = args[0]
        assert a is not None
        if fast is not None:
            b_f, bias_f = fast
            return [requant.from_float(np.asarray(a).astype(b_f.dtype) @ b_f + bias_f, channel_axis=1)]
        acc = exact_matmul(_lhs(a, aq, trans_a), b_const, a_bound, rhs.colsum) + bias
        acc = nx.limit(acc, num.acc_bits, num.acc_overflow)
        return [requant(acc, channel_axis=1)]

    return run


def _raw_code_gemm(aq: QType, b: np.ndarray, bias: np.ndarray, num: Numerics, a_bound: int
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """``A @ B' + (bias - za * sum B')`` on the raw codes of A, in float32 or float64 where every
    partial sum is an exact integer (as the conv kernel does): no int64 round trip. None where
    the accumulator policy could act (a bound over ``acc_bits``) or float64 is not exact."""
    correction = bias - aq.z * b.sum(axis=0)
    extra = int(np.abs(correction).max(initial=0))
    bound = acc_bound(a_bound, b.T) + int(np.abs(bias).max(initial=0))
    if not (num.acc_overflow == "exact" or bound < 2 ** (num.acc_bits - 1)):
        return None
    try:
        dt = exact_dtype(max(abs(aq.qmin), abs(aq.qmax), a_bound), b.T, extra)
    except Ungroupable:
        return None
    return b.astype(dt), correction.astype(dt)


def _gemm_bias(spec: OpSpec, ratio: Ratio, cols: int) -> np.ndarray:
    if len(spec.inputs) < 3 or (not spec.inputs[2].name and spec.inputs[2].const is None):
        return np.zeros(cols, dtype=np.int64)
    c = spec.const(2)
    if c is None or (c.ndim == 2 and c.shape[0] != 1):
        raise Ungroupable("C is not a constant vector")
    return int_bias(spec, 2, ratio.num, cols)


def build_matmul_float(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a, b = args[0], args[1]
        assert a is not None and b is not None
        return [np.matmul(np.asarray(a, np.float32), np.asarray(b, np.float32))]

    return run


def build_gemm_float(spec: OpSpec) -> Kernel:
    alpha, beta = np.float32(spec.attr("alpha", 1.0)), np.float32(spec.attr("beta", 1.0))
    trans_a, trans_b = bool(spec.attr("transA", 0)), bool(spec.attr("transB", 0))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a, b = np.asarray(args[0], np.float32), np.asarray(args[1], np.float32)
        y = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if alpha != 1:
            y = y * alpha
        c = args[2] if len(args) > 2 else None
        if c is not None:
            y = y + (np.asarray(c, np.float32) * beta if beta != 1 else np.asarray(c, np.float32))
        return [np.asarray(y, np.float32)]

    return run
