"""Conv family: Conv (QDQ), QLinearConv, ConvInteger, and float Conv.

Integer path: ``acc[n,m,...] = sum (x - zx) * (w[m] - zw[m]) + bias[m]``, exact. It is
computed as ``sum x * w'[m] + (bias[m] - zx * sum w'[m])`` on the raw codes (padding
reads ``zx``), summed through float BLAS (``correlate.Correlator``) in float32 while every
partial sum stays below 2**24 and in float64 otherwise (exact below 2**53).
Knobs read: ``acc_bits``, ``acc_overflow`` (applied to ``acc``), then the requantizer's
``scale``, ``multiplier_bits``, ``rounding``, ``zero_point`` with the per-channel
multiplier ``sx * sw[m] / sy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from qprobe.backends.engine.kernels.correlate import Correlator
from qprobe.backends.engine.kernels.window import Window
from qprobe.backends.engine.requant import Ratio, Requantizer


def _window(spec: OpSpec, w_shape: Sequence[int]) -> Window:
    kernel = spec.attr("kernel_shape", list(w_shape[2:]))
    return Window.from_attrs(spec.attrs, kernel)


def exact_dtype(x_bound: int, w_centered: np.ndarray, extra: int = 0) -> type:
    """float32 when every partial sum is an integer below 2**24, else float64 (below 2**53)."""
    bound = acc_bound(x_bound, w_centered) + extra
    if bound < 2**24:
        return np.float32
    if bound < 2**53:
        return np.float64
    raise Ungroupable(f"accumulator bound {bound} exceeds float64's exact integer range")


def acc_bound(x_bound: int, w_centered: np.ndarray) -> int:
    """A bound on ``|sum x * w|`` over one output: ``max|x| * max_m sum|w[m]|``."""
    per_out = np.abs(w_centered.reshape(w_centered.shape[0], -1)).sum(axis=1).max(initial=0)
    return int(x_bound) * int(per_out)


def x_bound(q: QType) -> int:
    return int(max(q.qmax - q.zero_point.min(), q.zero_point.max() - q.qmin))


def int_accumulator(spec: OpSpec, w_index: int = 1, extra: int = 0) -> tuple[Correlator, np.ndarray]:
    """The exact correlator on raw codes for a quantized conv (``extra``: headroom) and its centered weights."""
    w = spec.const(w_index)
    if w is None:
        raise Ungroupable("weights are not constant")
    wq = spec.q(w_index)
    if not wq.per_tensor and (wq.axis or 0) % w.ndim != 0:
        raise Ungroupable("weights are quantized per axis on an axis other than 0")
    xq = spec.q(0)
    if not xq.per_tensor:
        raise Ungroupable("input is quantized per axis")
    wc = centered(w, wq)
    raw_bound = max(abs(xq.qmin), abs(xq.qmax))
    dt = exact_dtype(max(raw_bound, x_bound(xq)), wc, extra + abs(xq.z) * acc_bound(1, wc))
    return Correlator(wc, int(spec.attr("group", 1)), _window(spec, w.shape), dt, order="kc",
                      crop=spec.info.get("crop"), prefer_last=bool(spec.info.get("channels_last"))), wc


def zero_point_correction(xq: QType, wc: np.ndarray) -> np.ndarray:
    """``-zx * sum w'[m]``: what turns a correlation of raw codes into one of ``x - zx``."""
    return -xq.z * wc.reshape(wc.shape[0], -1).sum(axis=1)


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
    xq, wq, yq, num = spec.q(0), spec.q(1), spec.out_q, spec.numerics
    ratio = Ratio.of([xq.scale, wq.scale], [yq.scale])
    channels = int(np.asarray(spec.const(1)).shape[0]) if spec.const(1) is not None else 0
    bias = int_bias(spec, 2, ratio.num, channels)
    bias_max = int(np.abs(bias).max(initial=0))
    corr, wc = int_accumulator(spec, extra=bias_max)
    bias = bias + zero_point_correction(xq, wc)
    bias_max = int(np.abs(bias).max(initial=0))
    lo, hi = spec.info.get("clamp") or (yq.qmin, yq.qmax)  # a folded Relu/Clip narrows the final clamp
    spec.info["clamped"] = True
    requant = Requantizer(num, ratio, yq.zero_point, int(lo), int(hi))
    bound = acc_bound(x_bound(xq), wc) + bias_max
    fits = num.acc_overflow == "exact" or bound < 2 ** (num.acc_bits - 1)
    bias_f: np.ndarray | None = bias.astype(corr.dtype) if bias_max else None
    pad = float(xq.z)
    biases: dict[int, np.ndarray] = {}  # bias shaped (M, 1, ...) per input rank
    codes = _code_dtype(yq.dtype)

    def finish(block: np.ndarray, out: np.ndarray) -> None:  # a (rows, M) block of the channels-last sums
        if bias_f is not None:
            block += bias_f
        requant.from_float(block, channel_axis=1, out=out)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        if fits and codes is not None:  # requantized in cache-sized blocks as the sums are made, where the path can
            done = corr.finished(x, pad, finish, codes)
            if done is not None:
                return [done]
        acc = corr.nchw(x, pad_value=pad)  # raw codes, (N, M, *out), possibly a channels-last view
        if fits and codes is not None:
            return [requantize_blocks(acc, requant, bias_f, codes)]
        if bias_f is not None:
            b = biases.get(acc.ndim)
            if b is None:
                b = biases[acc.ndim] = bias_f.reshape(-1, *([1] * (acc.ndim - 2)))
            acc += b
        if fits:
            return [requant.from_float(acc, channel_axis=1)]
        acc = nx.limit(np.rint(acc).astype(np.int64), num.acc_bits, num.acc_overflow)
        return [requant(acc, channel_axis=1)]

    return run


_BLOCK_BYTES = 1 << 19  # requantization passes run on blocks of the accumulator that stay in cache


def _code_dtype(name: str) -> np.dtype[Any] | None:
    return np.dtype(name) if name in ("int8", "uint8", "int16", "uint16") else None


def requantize_blocks(acc: np.ndarray, requant: Requantizer, bias: np.ndarray | None, codes: np.dtype[Any]
                      ) -> np.ndarray:
    """``requant.from_float(acc + bias)`` (channels on axis 1) as ``codes``, in ``acc``'s memory
    layout, over blocks of the axes outside the channel axis in memory: the bias, the
    multiply, rounding, zero point and clamp then read each block from cache, not from
    memory (a conv's accumulator is often several MB). ``acc`` is overwritten."""
    if acc.nbytes <= _BLOCK_BYTES and acc.flags.c_contiguous:  # one block: no layout bookkeeping
        if bias is not None:
            acc += bias.reshape(-1, *([1] * (acc.ndim - 2)))
        return requant.from_float(acc, channel_axis=1, out=np.empty(acc.shape, dtype=codes))
    perm = sorted(range(acc.ndim), key=lambda i: -acc.strides[i])  # memory order, outermost first
    mem = acc.transpose(perm)
    if not mem.flags.c_contiguous:
        mem, perm = np.ascontiguousarray(acc), list(range(acc.ndim))
    ch = perm.index(1)
    rows, inner = int(np.prod(mem.shape[:ch])), int(np.prod(mem.shape[ch + 1:]))
    # channels innermost: 2-D, so that numpy's inner loops run along the channels, not over size-1 axes
    grid = mem.reshape(rows, acc.shape[1]) if inner == 1 else mem.reshape(rows, acc.shape[1], inner)
    out = np.empty(grid.shape, dtype=codes)
    b = None if bias is None else bias.reshape(1, -1, *([1] * (grid.ndim - 2)))
    step = max(1, _BLOCK_BYTES // max(1, grid[0].nbytes))
    for lo in range(0, rows, step):
        block = grid[lo:lo + step]
        if b is not None:
            block += b
        requant.from_float(block, channel_axis=1, out=out[lo:lo + step])
    return out.reshape(mem.shape).transpose(np.argsort(perm))


def build_conv_integer(spec: OpSpec) -> Kernel:
    """ConvInteger: int32 ``sum (x - zx) * (w - zw)`` (acc_bits/acc_overflow applied)."""
    corr, wc = int_accumulator(spec)
    xq, num = spec.q(0), spec.numerics
    correction = zero_point_correction(xq, wc)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        acc = np.rint(corr(x, pad_value=xq.z)).astype(np.int64) + correction
        acc = np.moveaxis(acc, -1, 1)
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
            y = y + np.asarray(b, np.float32)
        return [np.ascontiguousarray(np.moveaxis(y, -1, 1), dtype=np.float32)]

    return run
