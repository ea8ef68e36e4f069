"""Data movement: Reshape, Flatten, Transpose, Slice, Squeeze, Unsqueeze, Pad, Split,
Gather, GatherElements, Resize (nearest), Identity, Expand, Tile, DepthToSpace, SpaceToDepth. They move elements
without arithmetic, so the same kernel runs on codes and on floats. In a QDQ group whose
output quantization differs from its input's, ``build_movement_int`` requantizes the
moved codes with ``concat.code_requantizer`` (class ``concat`` knobs); Pad's constant is
quantized exactly to the input's quantization. Parameter inputs (shapes, axes, pads,
indices) may be constants or tensors computed at run time (shape arithmetic); Resize's
scales and sizes must be constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qprobe.backends.engine.kernels import depth_space
from qprobe.backends.engine.kernels.base import Builder, Kernel, OpSpec, Ungroupable
from qprobe.backends.engine.kernels.concat import code_requantizer
from qprobe.errors import UnsupportedOpError


class _Param:
    """An op parameter: a constant input, a runtime input (shape arithmetic evaluated per
    run, e.g. PyTorch's flatten), or an attribute (older opsets); ``None`` when absent."""

    def __init__(self, spec: OpSpec, index: int, attr: str, default: Any = None) -> None:
        self.index = index
        self.runtime = False
        present = index < len(spec.inputs) and (spec.inputs[index].name or spec.inputs[index].const is not None)
        if present and spec.inputs[index].const is None:
            self.runtime = True
            self.value: Any = None
        elif present:
            self.value = _values(spec.inputs[index].const)
        else:
            self.value = spec.attrs.get(attr, default)

    def __call__(self, args: Sequence[np.ndarray | None]) -> Any:
        return _values(args[self.index]) if self.runtime else self.value


def _values(value: np.ndarray | None) -> Any:
    if value is None:
        return None
    arr = np.asarray(value)
    return [int(v) for v in arr.reshape(-1)] if arr.dtype.kind in "iub" else arr


def _unary(fn: Callable[[np.ndarray, Sequence[np.ndarray | None]], np.ndarray]) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        return [fn(np.asarray(x), args)]

    return run


def reshape(spec: OpSpec) -> Kernel:
    shape = _Param(spec, 1, "shape")
    allowzero = bool(spec.attr("allowzero", 0))
    batch_fixed_one = bool(spec.info.get("fixed_batch_one", False))

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        target = [x.shape[i] if (v == 0 and not allowzero) else v for i, v in enumerate(shape(args))]
        if batch_fixed_one and target and target[0] == 1 and x.shape[0] != 1:
            return x.reshape(x.shape[0], *x[:1].reshape(target).shape[1:])
        return x.reshape(target)

    return _unary(fn)


def flatten(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", 1))
    return _unary(lambda x, _a: x.reshape(math.prod(x.shape[: axis % (x.ndim + 1) if axis < 0 else axis]), -1))


def transpose(spec: OpSpec) -> Kernel:
    perm = spec.attrs.get("perm")
    return _unary(lambda x, _a: np.transpose(x, perm if perm is not None else None))


def squeeze(spec: OpSpec) -> Kernel:
    axes = _Param(spec, 1, "axes")

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        ax = axes(args)
        return np.squeeze(x, axis=None if ax is None else tuple(a % x.ndim for a in ax))

    return _unary(fn)


def unsqueeze(spec: OpSpec) -> Kernel:
    axes = _Param(spec, 1, "axes")

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        ax = list(axes(args))
        rank = x.ndim + len(ax)
        return np.expand_dims(x, tuple(sorted(a % rank for a in ax)))

    return _unary(fn)


def slice_(spec: OpSpec) -> Kernel:
    starts, ends = _Param(spec, 1, "starts"), _Param(spec, 2, "ends")
    axes, steps = _Param(spec, 3, "axes"), _Param(spec, 4, "steps")

    fixed = not any(p.runtime for p in (starts, ends, axes, steps))
    indices: dict[tuple[int, ...], tuple[slice, ...]] = {}  # constant parameters: the index per input shape

    def index_for(shape: tuple[int, ...], args: Sequence[np.ndarray | None]) -> tuple[slice, ...]:
        b0, e0, a0, s0 = starts(args), ends(args), axes(args), steps(args)
        index: list[slice] = [slice(None)] * len(shape)
        ax = list(a0) if a0 is not None else list(range(len(b0)))
        st = list(s0) if s0 is not None else [1] * len(b0)
        for a, b, e, s in zip(ax, b0, e0, st, strict=True):
            dim = shape[a]
            b = max(min(b, dim), -dim - 1) if b < 0 else min(b, dim)
            e = max(e, -dim - 1) if e < 0 else min(e, dim)
            index[a % len(shape)] = slice(b, e if not (s < 0 and e < -dim) else None, s)
        return tuple(index)

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        if not fixed:
            return x[index_for(x.shape, args)]
        index = indices.get(x.shape)
        if index is None:
            index = indices[x.shape] = index_for(x.shape, args)
        return x[index]

    return _unary(fn)


def gather(spec: OpSpec) -> Kernel:
    const_idx, axis = spec.const(1), int(spec.attr("axis", 0))

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        idx = np.asarray(const_idx if const_idx is not None else args[1]).astype(np.int64)
        ind = np.where(idx < 0, idx + x.shape[axis], idx)
        return np.take(x, ind, axis=axis)

    return _unary(fn)


def expand(spec: OpSpec) -> Kernel:
    """Expand: broadcast ``x`` and the target shape against each other (ONNX's bidirectional rule)."""
    shape = _Param(spec, 1, "shape")

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        return np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape(args)))))

    return _unary(fn)


def tile(spec: OpSpec) -> Kernel:
    repeats = _Param(spec, 1, "repeats")
    return _unary(lambda x, args: np.tile(x, tuple(repeats(args))))


def gather_elements(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", 0))

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        idx = np.asarray(spec.const(1) if spec.const(1) is not None else args[1]).astype(np.int64)
        idx = np.where(idx < 0, idx + x.shape[axis], idx)
        return np.take_along_axis(x, idx, axis=axis)

    return _unary(fn)


def identity(spec: OpSpec) -> Kernel:
    return _unary(lambda x, _a: x)


def pad(spec: OpSpec) -> Kernel:
    pads = _Param(spec, 1, "pads")
    mode = spec.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = spec.const(2) if len(spec.inputs) > 2 else None
    fill = float(np.asarray(value).reshape(-1)[0]) if value is not None else float(spec.attr("value", 0.0))
    axes = _Param(spec, 3, "axes")
    numpy_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]

    def fn(x: np.ndarray, args: Sequence[np.ndarray | None]) -> np.ndarray:
        a0, p = axes(args), list(pads(args))
        ax = list(a0) if a0 is not None else list(range(x.ndim))
        widths = [(0, 0)] * x.ndim
        for i, a in enumerate(ax):
            widths[a % x.ndim] = (p[i], p[i + len(ax)])
        if numpy_mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=spec.info.get("pad_code", fill))
        return np.pad(x, widths, mode=numpy_mode)  # type: ignore[call-overload]

    return _unary(fn)


def split(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", 0))
    split_sizes = _Param(spec, 1, "split")
    count = len(spec.outputs)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        sizes = split_sizes(args)
        if sizes is None:
            step = -(-x.shape[axis] // count)
            bounds = [min(step * i, x.shape[axis]) for i in range(1, count)]
        else:
            bounds = list(np.cumsum(sizes)[:-1])
        return list(np.split(x, bounds, axis=axis))

    return run


def resize(spec: OpSpec) -> Kernel:
    mode = spec.attr("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "nearest":
        raise UnsupportedOpError(f"Resize node {spec.node!r}: only mode='nearest' is supported, found {mode!r}")
    from qprobe.backends.engine.kernels.resize import nearest_indices

    scales = spec.const(2) if len(spec.inputs) > 2 else None
    sizes = spec.const(3) if len(spec.inputs) > 3 else None

    def fn(x: np.ndarray, _args: Sequence[np.ndarray | None]) -> np.ndarray:
        for axis, idx in enumerate(nearest_indices(spec.attrs, x.shape, scales, sizes)):
            if idx is not None:
                x = np.take(x, idx, axis=axis)
        return x

    return _unary(fn)


MOVEMENT: dict[str, Builder] = {
    "Reshape": reshape, "Flatten": flatten, "Transpose": transpose, "Squeeze": squeeze,
    "Unsqueeze": unsqueeze, "Slice": slice_, "Gather": gather, "Identity": identity,
    "Pad": pad, "Split": split, "Resize": resize, "Expand": expand, "Tile": tile, "GatherElements": gather_elements,
    "DepthToSpace": depth_space.depth_to_space, "SpaceToDepth": depth_space.space_to_depth,
}


def build_movement_int(spec: OpSpec) -> Kernel:
    """The movement kernel on codes, then a requantization if the output quantization differs."""
    qin = spec.q(0)
    if not qin.per_tensor:
        raise Ungroupable("input is quantized per axis")
    if spec.op_type == "Pad":
        fill = spec.const(2) if len(spec.inputs) > 2 else None
        real = 0.0 if fill is None else float(np.asarray(fill, np.float64).reshape(-1)[0])
        if fill is not None and spec.inputs[2].qtype is not None:
            q2 = spec.inputs[2].qtype
            real = float((np.float64(real) - q2.z) * np.float64(q2.s))
        spec.info["pad_code"] = qin.quantize_exact(real)
    move = MOVEMENT[spec.op_type](spec)
    maps = [code_requantizer(qin, q, spec.numerics) if q is not None else (lambda x: x) for q in spec.out_qtypes]

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return [f(y) for f, y in zip(maps, move(args), strict=True)]

    return run
