"""Shape computations: Shape, Size, ConstantOfShape, Range (int64 tensors, exact).

Where a shape is static the interpreter folds these to constants at compile time
(``fold.py``); where it depends on the batch dimension they run on every call, on the
shapes of that call's arrays, so that Reshape, Expand, Slice and friends take a computed
shape input (PyTorch's ``x.view(x.size(0), -1)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec


def shape_slice(dims: Sequence[int], start: int, end: int | None) -> list[int]:
    """Opset-15 Shape's ``start``/``end`` (clamped, negative from the end)."""
    n = len(dims)
    lo = min(max(start + n if start < 0 else start, 0), n)
    hi = n if end is None else min(max(end + n if end < 0 else end, 0), n)
    return list(dims[lo:hi])


def build_shape(spec: OpSpec) -> Kernel:
    start, end = int(spec.attr("start", 0)), spec.attrs.get("end")
    stop = None if end is None else int(end)
    return lambda args: [np.array(shape_slice(np.asarray(args[0]).shape, start, stop), dtype=np.int64)]


def build_size(spec: OpSpec) -> Kernel:
    return lambda args: [np.array(np.asarray(args[0]).size, dtype=np.int64)]


def build_constant_of_shape(spec: OpSpec) -> Kernel:
    value = spec.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)[:1]

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        shape = tuple(int(v) for v in np.asarray(args[0]).reshape(-1))
        return [np.full(shape, fill[0], dtype=fill.dtype)]

    return run


def build_range(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        start, limit, delta = (np.asarray(a) for a in args[:3])
        return [np.arange(start.item(), limit.item(), delta.item()).astype(start.dtype)]

    return run


SHAPE = {"Shape": build_shape, "Size": build_size, "ConstantOfShape": build_constant_of_shape, "Range": build_range}
