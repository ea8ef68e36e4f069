"""Running a quantized op in float32, as a CPU float fallback (or onnxruntime's unfused path) does.

``float_group`` wraps an op's float kernel: the quantized inputs are dequantized with
onnxruntime's formula ``fl32(fl32(q - z) * s)``, the op runs in float32, and each
output is quantized by the ``quantize`` class knobs (the QuantizeLinear node that ends
the group). It serves ``compute = float`` and QDQ groups that no integer kernel can
express (``Ungroupable``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from qprobe.backends.engine.kernels.base import Builder, Kernel, Operand, OpSpec
from qprobe.backends.engine.kernels.quantize import quantize_float
from qprobe.backends.engine.profiles import Numerics


def float_spec(spec: OpSpec) -> OpSpec:
    """The same op with dequantized constants and no quantization (what the float kernel sees)."""
    inputs = tuple(
        Operand(op.name, None if op.const is None else op.qtype.dequantize32(op.const), None)
        if op.qtype is not None else op
        for op in spec.inputs
    )
    return replace(spec, inputs=inputs, out_qtypes=tuple(None for _ in spec.out_qtypes))


def float_group(spec: OpSpec, build_float: Builder, quantize: Numerics) -> Kernel:
    inner = build_float(float_spec(spec))
    in_q = [op.qtype for op in spec.inputs]
    out_q = spec.out_qtypes

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        real = [a if q is None or a is None else q.dequantize32(a) for a, q in zip(args, in_q, strict=True)]
        ys = inner(real)
        out = []
        for y, q in zip(ys, out_q, strict=True):
            if q is None:
                out.append(y)
            else:
                out.append(quantize_float(y, q.shaped(q.scale, y.ndim), q.shaped(q.zero_point, y.ndim),
                                          q.dtype, quantize))
        return out

    return run
