"""Float-only ops of float islands and function expansions (e.g. DynamicQuantizeLinear's):
ReduceMin, ReduceMax, Min, Max, Div, Round, Cast. They have no integer form, so they
never join a QDQ group; in float32 they are exact IEEE operations (Round is half to
even, as ONNX specifies).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import helper

from qprobe.backends.engine.kernels.base import Kernel, OpSpec


def _reduce(spec: OpSpec) -> Kernel:
    fn = np.min if spec.op_type == "ReduceMin" else np.max
    keep = bool(spec.attr("keepdims", 1))
    const_axes = spec.const(1) if len(spec.inputs) > 1 else None
    attr_axes = spec.attrs.get("axes")

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        axes = const_axes if const_axes is not None else (args[1] if len(args) > 1 else None)
        axes = attr_axes if axes is None else axes
        ax = None if axes is None or np.asarray(axes).size == 0 else tuple(int(a) for a in np.asarray(axes).reshape(-1))
        return [np.asarray(fn(x, axis=ax, keepdims=keep))]

    return run


def _variadic(spec: OpSpec) -> Kernel:
    fn = np.minimum if spec.op_type == "Min" else np.maximum

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        out = np.asarray(args[0])
        for a in args[1:]:
            out = fn(out, np.asarray(a))
        return [out]

    return run


def _div(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a, b = np.asarray(args[0]), np.asarray(args[1])
        if a.dtype.kind in "iu":
            return [np.trunc(a / b).astype(a.dtype)]
        return [np.asarray(a / b, dtype=a.dtype)]

    return run


def _round(spec: OpSpec) -> Kernel:
    return lambda args: [np.rint(np.asarray(args[0]))]


def _cast(spec: OpSpec) -> Kernel:
    to = np.dtype(helper.tensor_dtype_to_np_dtype(int(spec.attr("to", 1))))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        if to.kind in "iu" and x.dtype.kind == "f":  # C casts truncate toward zero
            x = np.trunc(x)
        return [x.astype(to)]

    return run


MATH = {"ReduceMin": _reduce, "ReduceMax": _reduce, "Min": _variadic, "Max": _variadic, "Div": _div,
        "Round": _round, "Cast": _cast}
