"""Comparisons, boolean logic and selection: Equal, Less, Greater, LessOrEqual,
GreaterOrEqual, Not, And, Or, Xor, Where (numpy broadcasting is ONNX's multidirectional
broadcasting). Exact on any dtype. Where selects elements, so it is the same on codes
and on floats; a quantized Where runs here as DequantizeLinear -> Where -> QuantizeLinear,
which gives the codes onnxruntime's fused QLinearWhere gives (tests/engine/test_float_islands.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec

_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}


def build_compare(spec: OpSpec) -> Kernel:
    fn = _BINARY[spec.op_type]

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return [np.asarray(fn(np.asarray(args[0]), np.asarray(args[1])), dtype=bool)]

    return run


def build_not(spec: OpSpec) -> Kernel:
    return lambda args: [np.logical_not(np.asarray(args[0]))]


def build_where(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        cond, x, y = (np.asarray(a) for a in args)
        dtype = np.result_type(x, y) if x.dtype != y.dtype else x.dtype
        return [np.where(cond.astype(bool), x, y).astype(dtype, copy=False)]

    return run


LOGIC = {**dict.fromkeys(_BINARY, build_compare), "Not": build_not, "Where": build_where}
