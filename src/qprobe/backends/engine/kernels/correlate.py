"""N-d grouped correlation through float BLAS, exact on integer-valued operands.

``Correlator(w, group, window, dtype)`` prepares the weights once (w: (M, C/g, *kernel)).
A call on ``x`` (N, C, *spatial) returns the result **channels last**, (N, *out, M), in
``dtype``; kernels requantize along the last axis and transpose once, on the narrow
output. Internally the input is made channels-last so that every conv is one large GEMM:

* pointwise convs (1x1, stride 1, no padding): ``x (N*P, C) @ W (C, M)``;
* other non-depthwise convs: the taps are gathered into columns (N*P, C/g*K), one
  strided copy per tap (the (channel, tap) order of onnxruntime's im2col, which keeps
  float convs close to its summation order), then ``cols @ W (C/g*K, M/g)`` per group;
* depthwise convs (C/g == 1): ``acc += x_tap * w[tap]`` over the taps, in batch chunks
  that fit in cache.

With integer-valued inputs and weights whose partial sums stay below 2**24 (float32)
or 2**53 (float64), every product and sum is exact, whatever order BLAS uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.window import Window

_CHUNK_BYTES = 1 << 20
_FEW_CHANNELS = 16
_GATHER_ELEMENTS = 1 << 15  # small convs: one fancy-index gather beats a strided copy per tap


class Correlator:
    """``order`` is the column order of im2col: ``ck`` (channel-major, as onnxruntime's float
    conv; used for float convs) or ``kc`` (tap-major, contiguous copies; any order is exact
    on integers)."""

    def __init__(self, w: np.ndarray, group: int, window: Window, dtype: type, order: str = "ck",
                 crop: tuple[int | None, ...] | None = None) -> None:
        self.crop = crop  # per spatial axis: compute only the first `end` outputs (negative: all but -end)
        self.m = int(w.shape[0])
        self.group = group
        self.window = window
        self.dtype = dtype
        self.order = order
        self.cg = int(w.shape[1])
        self.depthwise = self.cg == 1 and group > 1 and self.m % group == 0
        taps = int(np.prod(window.kernel))
        if self.depthwise:
            self.mult = self.m // group
            self.wtaps: np.ndarray = np.ascontiguousarray(w.reshape(self.m, taps).T, dtype=dtype)  # (K, M)
        else:
            mg = self.m // group
            # stored (M/g, cols) and used transposed: BLAS then sums in the order onnxruntime's
            # float conv does (measured: identical float32 results on the tests' convs)
            blocks = [w[g * mg:(g + 1) * mg].reshape(mg, self.cg, taps) for g in range(group)]
            if order == "kc":
                blocks = [b.transpose(0, 2, 1) for b in blocks]
            self.wmats: list[np.ndarray] = [np.ascontiguousarray(b.reshape(mg, -1), dtype=dtype) for b in blocks]
        self.pointwise = (taps == 1 and all(s == 1 for s in window.strides)
                          and not any(window.pads) and window.auto_pad in ("NOTSET", "VALID"))
        self._gathers: dict[tuple[int, ...], tuple[np.ndarray, list[int]]] = {}  # input shape -> (index, out)

    def __call__(self, x: np.ndarray, pad_value: float = 0) -> np.ndarray:
        """Correlate ``x`` (codes or floats, NCHW, padded with ``pad_value``); channels-last result."""
        x = np.asarray(x)
        if self.crop is not None and self.pointwise:  # output position = input position
            x = x[(slice(None), slice(None), *(slice(None, e) for e in self.crop))]
        if (self.order == "kc" and self.group == 1 and not self.pointwise
                and x.size * int(np.prod(self.window.kernel)) <= _GATHER_ELEMENTS):
            return self._gathered(x, pad_value)
        if self.order == "kc" and self.cg < _FEW_CHANNELS and not (self.depthwise or self.pointwise):
            return self._channels_first(x, pad_value)
        xl: np.ndarray = np.ascontiguousarray(np.moveaxis(np.asarray(x), 1, -1))  # narrow copy for codes
        n = xl.shape[0]
        if self.pointwise:
            out = list(xl.shape[1:-1])
            xp: np.ndarray = xl.astype(self.dtype)
        else:
            padded, out = self.window.padded(xl, value=pad_value, last=True)
            out = self._cropped(out)
            if self.depthwise:  # the tap products convert the codes they read; no full float copy
                return self._depthwise(padded, out)
            xp = padded.astype(self.dtype)
        if self.depthwise:
            return self._depthwise(xp, out)
        if self.pointwise:
            cols = [xp.reshape(-1, xp.shape[-1])[:, g * self.cg:(g + 1) * self.cg] for g in range(self.group)]
        else:
            cols = [self._columns(xp[..., g * self.cg:(g + 1) * self.cg], out) for g in range(self.group)]
        parts = [c @ wmat.T for c, wmat in zip(cols, self.wmats, strict=True)]
        res = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return res.reshape(n, *out, self.m)

    def _cropped(self, out: list[int]) -> list[int]:
        if self.crop is None or self.pointwise:
            return out
        return [o if e is None else (min(o, e) if e >= 0 else max(0, o + e))
                for o, e in zip(out, self.crop, strict=True)]

    def _gathered(self, x: np.ndarray, pad_value: float) -> np.ndarray:
        """Small inputs: the columns in one gather from the flat input plus one padding cell,
        through an index built once per input shape (tap-major columns, as ``kc``)."""
        n, per = x.shape[0], int(np.prod(x.shape[1:]))
        key = tuple(x.shape[1:])
        if key not in self._gathers:
            self._gathers[key] = self._gather_index(key)
        index, out = self._gathers[key]
        flat: np.ndarray = np.empty((n, per + 1), dtype=self.dtype)
        flat[:, :per] = x.reshape(n, per)
        flat[:, per] = pad_value
        cols = flat[:, index]  # (N, P, K*C)
        res = cols.reshape(-1, cols.shape[-1]) @ self.wmats[0].T
        return res.reshape(n, *out, self.m)

    def _gather_index(self, shape: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
        """For input (C, *spatial): the flat source of every (output position, tap, channel)."""
        c, spatial = shape[0], shape[1:]
        begin, _end, out = self.window.resolve(spatial)
        out = self._cropped(out)
        nd = len(spatial)
        inside = np.ones((*out, *self.window.kernel), dtype=bool)
        flat = np.zeros((*out, *self.window.kernel), dtype=np.int64)
        for i in range(nd):
            o = np.arange(out[i]).reshape([-1 if j == i else 1 for j in range(nd)] + [1] * nd)
            k = np.arange(self.window.kernel[i]).reshape([1] * nd + [-1 if j == i else 1 for j in range(nd)])
            coord = o * self.window.strides[i] + k * self.window.dilations[i] - begin[i]
            inside &= (coord >= 0) & (coord < spatial[i])
            flat = flat * spatial[i] + coord
        positions, taps = int(np.prod(out)), int(np.prod(self.window.kernel))
        plane = int(np.prod(spatial))
        src = flat.reshape(positions, taps, 1) + plane * np.arange(c).reshape(1, 1, c)
        src = np.where(inside.reshape(positions, taps, 1), src, c * plane)  # the padding cell
        return np.ascontiguousarray(src.reshape(positions, taps * c)), list(out)

    def _channels_first(self, x: np.ndarray, pad_value: float) -> np.ndarray:
        """Few input channels: gather (C/g*K, N*P) rows from the NCHW input (long inner
        loops), one GEMM per group, and return a channels-last view of the (M, N*P) result."""
        xp, out = self.window.padded(x, value=pad_value)
        out = self._cropped(out)
        k, n = int(np.prod(self.window.kernel)), x.shape[0]
        parts = []
        for g, wmat in enumerate(self.wmats):
            cols = np.empty((k, self.cg, n, *out), dtype=self.dtype)
            for t, (_k, view) in enumerate(self.window.taps(xp[:, g * self.cg:(g + 1) * self.cg], out)):
                cols[t] = np.moveaxis(view, 1, 0)
            parts.append(wmat @ cols.reshape(k * self.cg, -1))  # "kc" weights: (M/g, K*C/g)
        res = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return res.T.reshape(n, *out, self.m)

    def _columns(self, xp: np.ndarray, out: Sequence[int]) -> np.ndarray:
        k = int(np.prod(self.window.kernel))
        c = xp.shape[-1]
        shape = (xp.shape[0], *out, k, c) if self.order == "kc" else (xp.shape[0], *out, c, k)
        cols = np.empty(shape, dtype=self.dtype)
        for t, (_k, view) in enumerate(self.window.taps(xp, out, last=True)):
            if self.order == "kc":
                cols[..., t, :] = view
            else:
                cols[..., t] = view
        return cols.reshape(-1, k * c)

    def _depthwise(self, xp: np.ndarray, out: Sequence[int]) -> np.ndarray:
        if self.mult > 1:
            xp = np.repeat(xp, self.mult, axis=-1)
        acc = np.zeros((xp.shape[0], *out, self.m), dtype=self.dtype)
        # with a unit stride along the last spatial axis, each tap's (width, channel) block is
        # contiguous: flatten it and tile the weights so numpy runs one long inner loop
        flat = self.window.strides[-1] == 1
        weights = np.tile(self.wtaps, (1, out[-1])) if flat else self.wtaps
        per_sample = max(1, int(np.prod(out)) * self.m * np.dtype(self.dtype).itemsize * 3)
        step = max(1, _CHUNK_BYTES // per_sample)
        for lo in range(0, xp.shape[0], step):
            part = acc[lo:lo + step]
            if flat:
                part = part.reshape(*part.shape[:-2], -1)
            tmp = np.empty_like(part)
            for t, (_k, view) in enumerate(self.window.taps(xp[lo:lo + step], out, last=True)):
                np.multiply(view.reshape(part.shape) if flat else view, weights[t], out=tmp)
                part += tmp
        return acc
