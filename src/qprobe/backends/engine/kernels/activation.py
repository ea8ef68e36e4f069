"""Activations: Relu, Clip, LeakyRelu, PRelu, Sigmoid, Tanh, HardSwish (and QLinearLeakyRelu,
QLinearSigmoid), integer and float.

Integer path (class ``activation``): a lookup table over every input code,
``T[q] = Q_out(f(DQ_in(q)))`` (PRelu, whose slope varies per channel, computes the same
formula elementwise). Knobs read: ``scale``: ``float32`` is onnxruntime's QLinear lookup
table (``DQ = fl32(sx*(q - zx))``, ``f`` as MLAS computes it, ``Q = RNE(fl32(y/sy)) + zy``);
``double``/``exact``/``fixed``/``pow2`` evaluate ``f`` in float64 and quantize its value
exactly (``exact``) or in float64; plus ``rounding`` and ``zero_point`` of that final
quantization. Relu and Clip folded into a producer's output are not handled here: the
interpreter clamps the producer's codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qprobe.backends.engine.kernels import mlas
from qprobe.backends.engine.kernels.base import CodeTable, Kernel, OpSpec, QType, require_per_tensor
from qprobe.backends.engine.kernels.quantize import quantize_float
from qprobe.backends.engine.profiles import Numerics

Fn = Callable[[np.ndarray], np.ndarray]


def _clip_bounds(spec: OpSpec, args: Sequence[np.ndarray | None] | None = None) -> tuple[float, float]:
    lo, hi = float(spec.attr("min", -np.inf)), float(spec.attr("max", np.inf))
    for i, which in ((1, "lo"), (2, "hi")):
        if i < len(spec.inputs) and (spec.inputs[i].name or spec.inputs[i].const is not None):
            v = args[i] if args is not None else spec.const(i)
            if v is None:
                continue
            val = float(np.asarray(v, np.float64).reshape(-1)[0])
            q = spec.inputs[i].qtype if args is None else None
            if q is not None:  # a quantized bound in a QDQ group
                val = (val - q.z) * float(q.s)
            lo, hi = (val, hi) if which == "lo" else (lo, val)
    return lo, hi


def function(spec: OpSpec, precise: bool) -> Fn:
    """The real-valued function of a unary activation (float32 as onnxruntime, or float64)."""
    op = spec.op_type
    dt = np.float64 if precise else np.float32
    if op in mlas.FLOAT32:
        return (mlas.FLOAT64 if precise else mlas.FLOAT32)[op]
    if op == "Relu":
        return lambda x: np.maximum(x, dt(0))
    if op == "LeakyRelu":
        alpha = dt(np.float32(spec.attr("alpha", 0.01)))
        return lambda x: np.where(x >= 0, x, (x * alpha).astype(dt))
    if op == "Clip":
        lo, hi = _clip_bounds(spec)
        return lambda x: np.clip(x, dt(lo), dt(hi)).astype(dt)
    raise KeyError(op)


def dequantize(codes: np.ndarray, q: QType, precise: bool) -> np.ndarray:
    if precise:
        return (codes - q.z).astype(np.float64) * float(q.s)
    return q.dequantize32(codes)


def _requantize_real(y: np.ndarray, q: QType, num: Numerics) -> np.ndarray:
    return quantize_float(y, np.asarray(q.s), np.asarray(q.z), q.dtype, num).astype(np.int64)


def build_unary_int(spec: OpSpec) -> Kernel:
    """LUT-based integer Relu/Clip/LeakyRelu/Sigmoid/Tanh/HardSwish."""
    require_per_tensor(spec, 0)
    qin, qout, num = spec.q(0), spec.out_q, spec.numerics
    precise = num.scale != "float32"
    f = function(spec, precise)
    codes = np.arange(qin.qmin, qin.qmax + 1, dtype=np.int64)
    lookup = CodeTable(_requantize_real(f(dequantize(codes, qin, precise)), qout, num), qin.dtype, qin.qmin)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        return [lookup(x)]

    return run


def build_prelu_int(spec: OpSpec) -> Kernel:
    require_per_tensor(spec, 0)
    qin, qout, num = spec.q(0), spec.out_q, spec.numerics
    precise = num.scale != "float32"
    slope = spec.const(1)
    if slope is None:
        raise KeyError("PRelu slope must be constant")
    q1 = spec.inputs[1].qtype
    real_slope = slope.astype(np.float64) if q1 is None else dequantize(slope, q1, precise)
    real_slope = real_slope.astype(np.float64 if precise else np.float32)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = dequantize(np.asarray(args[0]), qin, precise)
        y = np.where(x >= 0, x, x * real_slope)
        return [_requantize_real(y, qout, num)]

    return run


def build_unary_float(spec: OpSpec) -> Kernel:
    if spec.op_type == "Clip":
        def run_clip(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
            lo, hi = _clip_bounds(spec, args)
            x = np.asarray(args[0], np.float32)
            return [np.clip(x, np.float32(lo), np.float32(hi)).astype(np.float32)]

        return run_clip
    f = function(spec, precise=False)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return [np.asarray(f(np.asarray(args[0], np.float32)), np.float32)]

    return run


def build_prelu_float(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x, s = np.asarray(args[0], np.float32), np.asarray(args[1], np.float32)
        return [np.where(x > 0, x, (x * s).astype(np.float32)).astype(np.float32)]

    return run
