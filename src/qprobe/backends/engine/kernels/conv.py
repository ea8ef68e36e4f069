"""Conv family: Conv (QDQ), QLinearConv, ConvInteger, and float Conv.

Integer path: ``acc[n,m,...] = sum (x - zx) * (w[m] - zw[m]) + bias[m]``, exact. The
products are summed through float BLAS (im2col + GEMM, or a loop over taps for
depthwise convs) in float32 when ``max|x - zx| * max_m sum|w[m] - zw[m]|`` stays below
2**24 and in float64 otherwise (exact below 2**53), then converted back to int64.
Knobs read: ``acc_bits``, ``acc_overflow`` (applied to ``acc``), then the requantizer's
``scale``, ``multiplier_bits``, ``rounding``, ``zero_point`` with the per-channel
multiplier ``sx * sw[m] / sy``.
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
from qprobe.backends.engine.kernels.window import Window
from qprobe.backends.engine.requant import Ratio, Requantizer


class Correlator:
    """N-d grouped correlation of (N, C, *spatial) with weights (M, C/group, *kernel) via BLAS."""

    def __init__(self, w: np.ndarray, group: int, window: Window, dtype: type) -> None:
        self.m = int(w.shape[0])
        self.group = group
        self.window = window
        self.dtype = dtype
        self.cg = int(w.shape[1])
        self.depthwise = self.cg == 1 and group > 1 and self.m % group == 0
        if self.depthwise:
            self.mult = self.m // group
            self.wtaps: np.ndarray = w.reshape(self.m, -1).T.astype(dtype)  # (taps, M)
        else:
            mg = self.m // group
            self.wmats: list[np.ndarray] = [w[g * mg:(g + 1) * mg].reshape(mg, -1).T.astype(dtype) for g in range(group)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xp, out = self.window.padded(np.asarray(x, dtype=self.dtype))
        if self.depthwise:
            return self._taps(xp, out)
        n, parts = x.shape[0], []
        for g, wmat in enumerate(self.wmats):
            cols = self.window.columns(xp[:, g * self.cg:(g + 1) * self.cg], out)
            cols = cols.reshape(n * int(np.prod(out)), -1)
            parts.append((cols @ wmat).reshape(n, *out, -1))
        res = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return np.moveaxis(res, -1, 1)

    def _taps(self, xp: np.ndarray, out: Sequence[int]) -> np.ndarray:
        if self.mult > 1:
            xp = np.repeat(xp, self.mult, axis=1)
        acc = np.zeros((xp.shape[0], self.m, *out), dtype=self.dtype)
        extra = (1,) * len(out)
        for t, (_k, view) in enumerate(self.window.taps(xp, out)):
            acc += view * self.wtaps[t].reshape(1, self.m, *extra)
        return acc


def _window(spec: OpSpec, w_shape: Sequence[int]) -> Window:
    kernel = spec.attr("kernel_shape", list(w_shape[2:]))
    return Window.from_attrs(spec.attrs, kernel)


def exact_dtype(x_bound: int, w_centered: np.ndarray) -> type:
    """float32 when every partial sum is an integer below 2**24, else float64 (below 2**53)."""
    per_out = np.abs(w_centered.reshape(w_centered.shape[0], -1)).sum(axis=1).max(initial=0)
    bound = int(x_bound) * int(per_out)
    if bound < 2**24:
        return np.float32
    if bound < 2**53:
        return np.float64
    raise Ungroupable(f"accumulator bound {bound} exceeds float64's exact integer range")


def x_bound(q: QType) -> int:
    return int(max(q.qmax - q.zero_point.min(), q.zero_point.max() - q.qmin))


def int_accumulator(spec: OpSpec, w_index: int = 1) -> tuple[Correlator, np.ndarray]:
    """The exact correlator for a quantized conv and its centered int64 weights."""
    w = spec.const(w_index)
    if w is None:
        raise Ungroupable("weights are not constant")
    wq = spec.q(w_index)
    if not wq.per_tensor and (wq.axis or 0) % w.ndim != 0:
        raise Ungroupable("weights are quantized per axis on an axis other than 0")
    wc = centered(w, wq)
    dt = exact_dtype(x_bound(spec.q(0)), wc)
    return Correlator(wc, int(spec.attr("group", 1)), _window(spec, w.shape), dt), wc


def int_bias(spec: OpSpec, index: int, ratio_num: Sequence[np.ndarray], channels: int) -> np.ndarray:
    """int32 bias codes, checked to be quantized with ``scale = sx * sw`` and zero point 0."""
    if index >= len(spec.inputs) or not spec.inputs[index].name and spec.inputs[index].const is None:
        return np.zeros(channels, dtype=np.int64)
    b, bq = spec.const(index), spec.inputs[index].qtype
    if b is None:
        raise Ungroupable("bias is not constant")
    if bq is not None:
        expect = np.broadcast_to(nx.fl32(ratio_num[0]) * nx.fl32(ratio_num[1]), (channels,))
        if bq.zero_point.any() or not np.array_equal(np.broadcast_to(bq.scale, (channels,)), expect):
            raise Ungroupable("bias is not quantized with scale x_scale * w_scale and zero point 0")
    return np.broadcast_to(np.asarray(b).astype(np.int64).reshape(-1), (channels,))


def build_conv_int(spec: OpSpec) -> Kernel:
    """Quantized Conv (QDQ group or QLinearConv with inputs x, w, bias)."""
    require_per_tensor(spec, 0)
    xq, wq, yq = spec.q(0), spec.q(1), spec.out_q
    corr, _wc = int_accumulator(spec)
    ratio = Ratio.of([xq.scale, wq.scale], [yq.scale])
    bias = int_bias(spec, 2, ratio.num, corr.m)
    extra = (1,) * (len(corr.window.kernel))
    bias_b = bias.reshape(1, -1, *extra)
    num = spec.numerics
    requant = Requantizer(num, ratio, yq.zero_point, yq.qmin, yq.qmax)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        acc = np.rint(corr(centered(x, xq))).astype(np.int64) + bias_b
        acc = nx.limit(acc, num.acc_bits, num.acc_overflow)
        return [requant(acc, channel_axis=1)]

    return run


def build_conv_integer(spec: OpSpec) -> Kernel:
    """ConvInteger: int32 ``sum (x - zx) * (w - zw)`` (acc_bits/acc_overflow applied)."""
    corr, _wc = int_accumulator(spec)
    xq, num = spec.q(0), spec.numerics

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        acc = np.rint(corr(centered(x, xq))).astype(np.int64)
        return [nx.limit(acc, num.acc_bits, num.acc_overflow).astype(np.int32)]

    return run


def build_conv_float(spec: OpSpec) -> Kernel:
    """Float32 Conv (float islands and float-computed groups); summation order differs from MLAS."""
    w0 = spec.const(1)
    fixed = None if w0 is None else Correlator(np.asarray(w0, np.float32), int(spec.attr("group", 1)),
                                                _window(spec, w0.shape), np.float32)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x, w = args[0], args[1]
        assert x is not None and w is not None
        corr = fixed or Correlator(np.asarray(w, np.float32), int(spec.attr("group", 1)),
                                   _window(spec, w.shape), np.float32)
        y = corr(np.asarray(x, np.float32))
        b = args[2] if len(args) > 2 else None
        if b is not None:
            y = y + np.asarray(b, np.float32).reshape(1, -1, *(1,) * (y.ndim - 2))
        return [y.astype(np.float32)]

    return run
