"""ReduceSum and ReduceMean in float32, summed in the order onnxruntime's CPU kernels use.

No integer form: a quantized ReduceMean runs as DequantizeLinear -> ReduceMean ->
QuantizeLinear, which is what onnxruntime does (no QDQ selector fuses it).

onnxruntime first merges adjacent kept/reduced dimensions (onnxruntime/core/providers/cpu/
reduction/reduction_ops.cc, ``OptimizeShapeForFastReduce``; size-1 dimensions are merged
too, not dropped) and picks a loop by the resulting pattern; each order below was matched
bit for bit against onnxruntime 1.32 on x86-64 (AVX-512 machine; tests/engine/test_reduce.py):

* ``KR`` (trailing axes, e.g. global pooling, LayerNorm statistics) and ``R`` (all axes): Eigen's vectorized
  sum of each row, ``eigen_row_sums``: 4-lane SSE packets from the first 16-byte-aligned
  element (the tensor starts aligned, row ``k`` starts at element ``k * R``), two packet
  accumulators over pairs of packets, one more packet, the lanes added as
  ``(l0 + l2) + (l1 + l3)``, then the unaligned head and the tail one by one;
* ``KRK`` (one middle block of axes, at least 2 outer rows): an SGEMM with a ones vector,
  which sums the reduced rows in blocks of four (each block left to right, blocks added in
  order), then a pair block, then a last single row;
* ``RKR`` (at least 2 middle rows): per middle index, the Eigen sum of each contiguous
  trailing chunk, the chunks added in order;
* anything else (``RK``, scattered axes, a single outer row): each output's
  elements added one by one in index order.

The thresholds assume one intra-op thread (the ``ort`` backends' default).

ReduceMean divides the sum by the element count in float32. Integer inputs (shape
arithmetic) are summed exactly in their dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec

F32 = np.float32


def _seq(parts: Sequence[np.ndarray]) -> np.ndarray:
    acc = np.array(parts[0], dtype=F32, copy=True)
    for p in parts[1:]:
        acc = np.add(acc, p, dtype=F32)
    return acc


def _packet_sum(rows: np.ndarray, head: int) -> np.ndarray:
    """Eigen's redux of rows that share the same alignment (``head`` unaligned leading elements)."""
    n = rows.shape[1]
    size = (n - head) // 4 * 4
    if size == 0:
        return _seq([rows[:, j] for j in range(n)])
    pairs_end = head + (n - head) // 8 * 8
    p0 = rows[:, head:head + 4].astype(F32)
    if size > 4:
        p1 = rows[:, head + 4:head + 8].astype(F32)
        for i in range(head + 8, pairs_end, 8):
            p0 = np.add(p0, rows[:, i:i + 4], dtype=F32)
            p1 = np.add(p1, rows[:, i + 4:i + 8], dtype=F32)
        p0 = np.add(p0, p1, dtype=F32)
        if head + size > pairs_end:
            p0 = np.add(p0, rows[:, pairs_end:pairs_end + 4], dtype=F32)
    res = np.add(np.add(p0[:, 0], p0[:, 2], dtype=F32), np.add(p0[:, 1], p0[:, 3], dtype=F32), dtype=F32)
    for j in [*range(head), *range(head + size, n)]:
        res = np.add(res, rows[:, j], dtype=F32)
    return res


def eigen_row_sums(rows: np.ndarray, first: int = 0) -> np.ndarray:
    """Eigen's float32 ``sum()`` of each row of a contiguous (K, R) block that starts ``first``
    elements into a 16-byte-aligned buffer."""
    k, n = rows.shape
    out = np.empty(k, F32)
    starts = (first + np.arange(k) * n) % 4
    for mod in np.unique(starts):
        mask = starts == mod
        out[mask] = _packet_sum(rows[mask], min(n, (4 - int(mod)) % 4))
    return out


def _gemm_ones_sum(x: np.ndarray) -> np.ndarray:
    """Sum over axis 1 of (K, R, N) as onnxruntime's ones-vector SGEMM does."""
    r = x.shape[1]
    rows = [x[:, j, :] for j in range(r)]
    blocks = [_seq(rows[i:i + 4]) for i in range(0, r - r % 4, 4)]
    rest = r % 4
    if rest >= 2:
        blocks.append(_seq(rows[r - rest:r - rest + 2]))
    if rest % 2:
        blocks.append(rows[r - 1].astype(F32))
    return _seq(blocks)


def _fast_shape(shape: tuple[int, ...], axes: set[int]) -> tuple[list[int], str]:
    """onnxruntime's OptimizeShapeForFastReduce: adjacent kept/reduced dimensions merged
    (size-1 dimensions included), as sizes and a K/R pattern."""
    sizes, kinds = [shape[0]], ["R" if 0 in axes else "K"]
    for i in range(1, len(shape)):
        kind = "R" if i in axes else "K"
        if kind == kinds[-1]:
            sizes[-1] *= shape[i]
        else:
            sizes.append(shape[i])
            kinds.append(kind)
    return sizes, "".join(kinds)


def _sequential(x: np.ndarray, axes: list[int], out_shape: tuple[int, ...]) -> np.ndarray:
    """onnxruntime's generic loop: each output's elements added one by one in index order."""
    moved = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim)).reshape(int(np.prod(out_shape)), -1)
    return _seq([moved[:, j] for j in range(moved.shape[1])]).reshape(out_shape)


def _rkr_sum(x: np.ndarray) -> np.ndarray:
    """(R0, K, R2): per middle index, Eigen sums of each contiguous R2 chunk, added over R0 in order."""
    r0, k, r2 = x.shape
    chunks = [eigen_row_sums(x[i].reshape(k, r2), first=i * k * r2) for i in range(r0)]
    return _seq(chunks)


def ort_sum(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """float32 sum over ``axes`` (reduced dimensions removed), in onnxruntime's order
    (one intra-op thread: the middle-block and outer-block loops need at least 2 outer rows)."""
    ax = sorted({a % x.ndim for a in axes}) if x.ndim else []
    out_shape = tuple(d for i, d in enumerate(x.shape) if i not in ax)
    if x.size == 0 or not ax:
        return np.sum(x, axis=tuple(ax), dtype=F32).reshape(out_shape)
    x = np.ascontiguousarray(x, dtype=F32)
    sizes, kinds = _fast_shape(x.shape, set(ax))
    if kinds in ("KR", "R"):
        return eigen_row_sums(x.reshape(-1, sizes[-1])).reshape(out_shape)
    if kinds == "KRK" and sizes[0] >= 2:
        return _gemm_ones_sum(x.reshape(sizes)).reshape(out_shape)
    if kinds == "RKR" and sizes[1] >= 2:
        return _rkr_sum(x.reshape(sizes)).reshape(out_shape)
    return _sequential(x, ax, out_shape)


def _axes(spec: OpSpec, args: Sequence[np.ndarray | None], ndim: int) -> list[int] | None:
    """The reduced axes (None: identity for noop_with_empty_axes), from the input or the attribute."""
    given = args[1] if len(args) > 1 and args[1] is not None else spec.attrs.get("axes")
    axes = [] if given is None else [int(a) for a in np.asarray(given).reshape(-1)]
    if not axes:
        return None if spec.attr("noop_with_empty_axes", 0) else list(range(ndim))
    return axes


def build_reduce(spec: OpSpec) -> Kernel:
    keep = bool(spec.attr("keepdims", 1))
    mean = spec.op_type == "ReduceMean"

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        axes = _axes(spec, args, x.ndim)
        if axes is None:
            return [x]
        ax = sorted({a % x.ndim for a in axes})
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            total = x.astype(np.int64).sum(axis=tuple(ax))
            if mean:  # onnxruntime divides in double and truncates toward zero
                total = np.trunc(total / int(np.prod([x.shape[a] for a in ax]))).astype(np.int64)
            y = np.clip(total, info.min, info.max).astype(x.dtype)
        else:
            y = ort_sum(x, ax)
            if mean:
                y = np.divide(y, F32(int(np.prod([x.shape[a] for a in ax]))), dtype=F32)
        return [np.expand_dims(y, tuple(ax)) if keep else np.asarray(y)]

    return run


REDUCE = {"ReduceSum": build_reduce, "ReduceMean": build_reduce}
