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


class Correlator:
    def __init__(self, w: np.ndarray, group: int, window: Window, dtype: type) -> None:
        self.m = int(w.shape[0])
        self.group = group
        self.window = window
        self.dtype = dtype
        self.cg = int(w.shape[1])
        self.depthwise = self.cg == 1 and group > 1 and self.m % group == 0
        taps = int(np.prod(window.kernel))
        if self.depthwise:
            self.mult = self.m // group
            self.wtaps: np.ndarray = np.ascontiguousarray(w.reshape(self.m, taps).T, dtype=dtype)  # (K, M)
        else:
            mg = self.m // group
            # stored (M/g, C/g*K) and used transposed: BLAS then sums in the order onnxruntime's
            # float conv does (measured: identical float32 results on the tests' convs)
            self.wmats: list[np.ndarray] = [np.ascontiguousarray(w[g * mg:(g + 1) * mg].reshape(mg, self.cg * taps), dtype=dtype)
                          for g in range(group)]
        self.pointwise = (taps == 1 and all(s == 1 for s in window.strides)
                          and not any(window.pads) and window.auto_pad in ("NOTSET", "VALID"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xl: np.ndarray = np.ascontiguousarray(np.moveaxis(np.asarray(x, dtype=self.dtype), 1, -1))
        if self.depthwise:
            return self._depthwise(xl)
        n = xl.shape[0]
        if self.pointwise:
            out = list(xl.shape[1:-1])
            cols = [xl.reshape(-1, xl.shape[-1])[:, g * self.cg:(g + 1) * self.cg] for g in range(self.group)]
        else:
            xp, out = self.window.padded(xl, last=True)
            cols = [self._columns(xp[..., g * self.cg:(g + 1) * self.cg], out) for g in range(self.group)]
        parts = [c @ wmat.T for c, wmat in zip(cols, self.wmats, strict=True)]
        res = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return res.reshape(n, *out, self.m)

    def _columns(self, xp: np.ndarray, out: Sequence[int]) -> np.ndarray:
        k = int(np.prod(self.window.kernel))
        cols = np.empty((xp.shape[0], *out, xp.shape[-1], k), dtype=self.dtype)
        for t, (_k, view) in enumerate(self.window.taps(xp, out, last=True)):
            cols[..., t] = view
        return cols.reshape(-1, k * xp.shape[-1])

    def _depthwise(self, xl: np.ndarray) -> np.ndarray:
        if self.mult > 1:
            xl = np.repeat(xl, self.mult, axis=-1)
        xp, out = self.window.padded(xl, last=True)
        acc = np.zeros((xp.shape[0], *out, self.m), dtype=self.dtype)
        per_sample = max(1, int(np.prod(out)) * self.m * np.dtype(self.dtype).itemsize * 3)
        step = max(1, _CHUNK_BYTES // per_sample)
        for lo in range(0, xp.shape[0], step):
            part, tmp = acc[lo:lo + step], np.empty_like(acc[lo:lo + step])
            for t, (_k, view) in enumerate(self.window.taps(xp[lo:lo + step], out, last=True)):
                np.multiply(view, self.wtaps[t], out=tmp)
                part += tmp
        return acc
