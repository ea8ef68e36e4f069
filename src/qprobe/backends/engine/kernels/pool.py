"""Pooling: MaxPool, AveragePool, GlobalAveragePool (QDQ, QLinear*, float).

MaxPool on codes takes the window maximum (padding never wins), then requantizes with
``concat.code_requantizer`` if the output quantization differs (class ``concat`` knobs).

Average pools (class ``pool``) compute ``v = sum(q - zx) * sx / (sy * count)`` per
window, ``count`` excluding padding unless ``count_include_pad``. Knobs read: ``scale``,
``multiplier_bits``, ``rounding``, ``zero_point`` through the requantizer, except for
``scale = float32``, which is onnxruntime's arithmetic:

* GlobalAveragePool (QLinearGlobalAveragePool, and QLinearAveragePool whose window
  covers the whole unpadded image): exact integer sum, then
  ``RNE(fl32(acc) * fl32(sx / fl32(sy * N))) + zy``;
* AveragePool (QLinearAveragePool): each input dequantized to float32, summed in
  float32 in window order (row-major taps), divided by ``count`` in float32, then
  ``round(fl32(fl32(y / sy) + zy))`` (zero point before rounding when
  ``zero_point = before``, which is what onnxruntime does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.base import Kernel, OpSpec, QType, centered, require_per_tensor
from qprobe.backends.engine.kernels.concat import code_requantizer
from qprobe.backends.engine.kernels.window import Window
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.requant import Ratio, Requantizer


def _window(spec: OpSpec) -> Window:
    return Window.from_attrs(spec.attrs, spec.attr("kernel_shape", [1]))


def window_sum(x: np.ndarray, win: Window, dtype: type, fill: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sum over each window (taps in row-major order, accumulated in ``dtype``) and the in-bounds counts."""
    xp, out = win.padded(np.asarray(x, dtype=dtype), value=fill)
    ones, _ = win.padded(np.ones((1, 1, *x.shape[2:]), dtype=np.int64))
    acc = np.zeros((x.shape[0], x.shape[1], *out), dtype=dtype)
    count = np.zeros((1, 1, *out), dtype=np.int64)
    for (_k, view), (_k2, mask) in zip(win.taps(xp, out), win.taps(ones, out), strict=True):
        acc = (acc + view).astype(dtype)
        count += mask
    return acc, count


def _include_pad_count(win: Window, count: np.ndarray, spec: OpSpec) -> np.ndarray:
    if spec.attr("count_include_pad", 0):
        return np.full_like(count, int(np.prod(win.kernel)))
    return count


def _requant_by_count(acc: np.ndarray, count: np.ndarray, xq: QType, yq: QType, num: Numerics) -> np.ndarray:
    out = np.empty(acc.shape, dtype=np.int64)
    counts = np.broadcast_to(count, acc.shape)
    for c in np.unique(count):
        mask = counts == c
        rq = Requantizer(num, Ratio.of([xq.s], [yq.s, np.float32(c)]), yq.zero_point, yq.qmin, yq.qmax)
        out[mask] = rq(acc[mask])
    return out


def _ort_global(acc: np.ndarray, n: int, xq: QType, yq: QType, num: Numerics) -> np.ndarray:
    scale = np.float32(xq.s / np.float32(yq.s * np.float32(n)))
    v = (acc.astype(np.float32) * scale).astype(np.float32)
    return nx.round_float(v, num.rounding).astype(np.int64) + yq.z


def _ort_windowed(x: np.ndarray, win: Window, spec: OpSpec, xq: QType, yq: QType) -> np.ndarray:
    acc, count = window_sum(xq.dequantize32(x), win, np.float32)
    y = (acc / _include_pad_count(win, count, spec).astype(np.float32)).astype(np.float32)
    v = (y / yq.s).astype(np.float32)
    num = spec.numerics
    if num.zero_point == "before":
        return nx.round_float((v + np.float32(yq.z)).astype(np.float32), num.rounding).astype(np.int64)
    return nx.round_float(v, num.rounding).astype(np.int64) + yq.z


def build_avgpool_int(spec: OpSpec) -> Kernel:
    require_per_tensor(spec, 0)
    xq, yq, num = spec.q(0), spec.out_q, spec.numerics
    is_global = spec.op_type == "GlobalAveragePool"

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        win = Window.from_attrs({}, x.shape[2:]) if is_global else _window(spec)
        whole = tuple(win.kernel) == tuple(x.shape[2:]) and not any(win.pads) and win.auto_pad in ("NOTSET", "VALID")
        if num.scale == "float32" and not whole:
            return [np.clip(_ort_windowed(x, win, spec, xq, yq), yq.qmin, yq.qmax)]
        xc = centered(x, xq)
        if whole:
            acc = xc.reshape(*xc.shape[:2], -1).sum(axis=-1).reshape(*xc.shape[:2], *(1,) * (x.ndim - 2))
            n = int(np.prod(x.shape[2:]))
            if num.scale == "float32":
                return [np.clip(_ort_global(acc, n, xq, yq, num), yq.qmin, yq.qmax)]
            return [_requant_by_count(acc, np.array([[[n]]]).reshape((1,) * acc.ndim), xq, yq, num)]
        acc, count = window_sum(xc, win, np.int64)
        return [_requant_by_count(acc, _include_pad_count(win, count, spec), xq, yq, num)]

    return run


def build_maxpool_int(spec: OpSpec) -> Kernel:
    require_per_tensor(spec, 0)
    xq = spec.q(0)
    requant = code_requantizer(xq, spec.out_q, spec.numerics)
    win = _window(spec)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0]).astype(np.int64)
        return [np.asarray(requant(_window_max(x, win, xq.qmin - 1)))]

    return run


def _window_max(x: np.ndarray, win: Window, fill: float) -> np.ndarray:
    xp, out = win.padded(x, value=fill)
    res = None
    for _k, view in win.taps(xp, out):
        res = view.copy() if res is None else np.maximum(res, view)
    assert res is not None
    return res


def build_maxpool_float(spec: OpSpec) -> Kernel:
    win = _window(spec)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return [_window_max(np.asarray(args[0], np.float32), win, -np.inf).astype(np.float32)]

    return run


def build_avgpool_float(spec: OpSpec) -> Kernel:
    is_global = spec.op_type == "GlobalAveragePool"

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0], np.float32)
        if is_global:
            return [x.reshape(*x.shape[:2], -1).mean(axis=-1, dtype=np.float32).reshape(
                *x.shape[:2], *(1,) * (x.ndim - 2))]
        win = _window(spec)
        acc, count = window_sum(x, win, np.float32)
        return [(acc / _include_pad_count(win, count, spec).astype(np.float32)).astype(np.float32)]

    return run
