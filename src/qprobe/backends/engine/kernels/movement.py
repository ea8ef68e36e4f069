"""Data movement: Reshape, Flatten, Transpose, Slice, Squeeze, Unsqueeze, Pad, Split,
Gather, Resize (nearest), Identity. They move elements without arithmetic, so the same
kernel runs on codes and on floats. In a QDQ group whose output quantization differs
from its input's, ``build_movement_int`` requantizes the moved codes with
``concat.code_requantizer`` (class ``concat`` knobs); Pad's constant is quantized
exactly to the input's quantization. Parameter inputs (shapes, axes, pads, indices,
scales) must be constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qprobe.backends.engine.kernels.base import Builder, Kernel, OpSpec, Ungroupable
from qprobe.backends.engine.kernels.concat import code_requantizer
from qprobe.errors import UnsupportedOpError


def _param(spec: OpSpec, index: int, attr: str, default: Any = None) -> Any:
    """An op parameter from a constant input (newer opsets) or an attribute (older ones)."""
    if index < len(spec.inputs) and (spec.inputs[index].name or spec.inputs[index].const is not None):
        value = spec.inputs[index].const
        if value is None:
            raise UnsupportedOpError(
                f"{spec.op_type} node {spec.node!r}: input {index} ({attr}) must be a constant for the engine"
            )
        return [int(v) for v in np.asarray(value).reshape(-1)] if value.dtype.kind in "iu" else value
    return spec.attrs.get(attr, default)


def _unary(fn: Any) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        return [fn(np.asarray(x))]

    return run


def reshape(spec: OpSpec) -> Kernel:
    shape = list(_param(spec, 1, "shape"))
    allowzero = bool(spec.attr("allowzero", 0))
    batch_fixed_one = bool(spec.info.get("fixed_batch_one", False))

    def fn(x: np.ndarray) -> np.ndarray:
        target = [x.shape[i] if (v == 0 and not allowzero) else v for i, v in enumerate(shape)]
        if batch_fixed_one and target and target[0] == 1 and x.shape[0] != 1:
            return x.reshape(x.shape[0], *x[:1].reshape(target).shape[1:])
        return x.reshape(target)

    return _unary(fn)


def flatten(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", 1))
    return _unary(lambda x: x.reshape(int(np.prod(x.shape[: axis % (x.ndim + 1) if axis < 0 else axis])), -1))


def transpose(spec: OpSpec) -> Kernel:
    perm = spec.attrs.get("perm")
    return _unary(lambda x: np.transpose(x, perm if perm is not None else None))


def squeeze(spec: OpSpec) -> Kernel:
    axes = _param(spec, 1, "axes")
    return _unary(lambda x: np.squeeze(x, axis=None if axes is None else tuple(axes)))


def unsqueeze(spec: OpSpec) -> Kernel:
    axes = list(_param(spec, 1, "axes"))

    def fn(x: np.ndarray) -> np.ndarray:
        rank = x.ndim + len(axes)
        return np.expand_dims(x, tuple(sorted(a % rank for a in axes)))

    return _unary(fn)


def slice_(spec: OpSpec) -> Kernel:
    starts, ends = _param(spec, 1, "starts"), _param(spec, 2, "ends")
    axes, steps = _param(spec, 3, "axes"), _param(spec, 4, "steps")

    def fn(x: np.ndarray) -> np.ndarray:
        index: list[slice] = [slice(None)] * x.ndim
        ax = list(axes) if axes is not None else list(range(len(starts)))
        st = list(steps) if steps is not None else [1] * len(starts)
        for a, b, e, s in zip(ax, starts, ends, st, strict=True):
            dim = x.shape[a]
            b = max(min(b, dim), -dim - 1) if b < 0 else min(b, dim)
            e = max(e, -dim - 1) if e < 0 else min(e, dim)
            index[a % x.ndim] = slice(b, e if not (s < 0 and e < -dim) else None, s)
        return x[tuple(index)]

    return _unary(fn)


def gather(spec: OpSpec) -> Kernel:
    idx, axis = spec.const(1), int(spec.attr("axis", 0))
    if idx is None:
        raise UnsupportedOpError(f"Gather node {spec.node!r}: indices must be a constant for the engine")

    def fn(x: np.ndarray) -> np.ndarray:
        ind = np.where(idx < 0, idx + x.shape[axis], idx)
        return np.take(x, ind, axis=axis)

    return _unary(fn)


def identity(spec: OpSpec) -> Kernel:
    return _unary(lambda x: x)


def pad(spec: OpSpec) -> Kernel:
    pads = list(_param(spec, 1, "pads"))
    mode = spec.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = spec.const(2) if len(spec.inputs) > 2 else None
    fill = float(np.asarray(value).reshape(-1)[0]) if value is not None else float(spec.attr("value", 0.0))
    axes = _param(spec, 3, "axes")
    numpy_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]

    def fn(x: np.ndarray) -> np.ndarray:
        ax = list(axes) if axes is not None else list(range(x.ndim))
        widths = [(0, 0)] * x.ndim
        for i, a in enumerate(ax):
            widths[a % x.ndim] = (pads[i], pads[i + len(ax)])
        if numpy_mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=spec.info.get("pad_code", fill))
        return np.pad(x, widths, mode=numpy_mode)  # type: ignore[call-overload]

    return _unary(fn)


def split(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", 0))
    sizes = _param(spec, 1, "split")
    count = len(spec.outputs)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
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

    def fn(x: np.ndarray) -> np.ndarray:
        for axis, idx in enumerate(nearest_indices(spec.attrs, x.shape, scales, sizes)):
            if idx is not None:
                x = np.take(x, idx, axis=axis)
        return x

    return _unary(fn)


MOVEMENT: dict[str, Builder] = {
    "Reshape": reshape, "Flatten": flatten, "Transpose": transpose, "Squeeze": squeeze,
    "Unsqueeze": unsqueeze, "Slice": slice_, "Gather": gather, "Identity": identity,
    "Pad": pad, "Split": split, "Resize": resize,
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
