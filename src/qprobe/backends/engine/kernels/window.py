"""Sliding-window geometry shared by Conv and the pools (N-d, NCHW layout).

``Window`` resolves ONNX's ``kernel_shape``/``strides``/``dilations``/``pads``/``auto_pad``
(and ``ceil_mode`` for pools) against a runtime input shape, pads an array and returns
strided views of the window taps, so that kernels never loop over output pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Window:
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]  # begin..., end... (ONNX order); ignored unless auto_pad is NOTSET
    auto_pad: str = "NOTSET"
    ceil_mode: bool = False

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], kernel: Sequence[int]) -> Window:
        k = tuple(int(v) for v in kernel)
        n = len(k)
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if isinstance(auto_pad, bytes):
            auto_pad = auto_pad.decode()
        return cls(
            kernel=k,
            strides=tuple(int(v) for v in attrs.get("strides", [1] * n)),
            dilations=tuple(int(v) for v in attrs.get("dilations", [1] * n)),
            pads=tuple(int(v) for v in attrs.get("pads", [0] * (2 * n))),
            auto_pad=str(auto_pad),
            ceil_mode=bool(attrs.get("ceil_mode", 0)),
        )

    def extent(self, i: int) -> int:
        return (self.kernel[i] - 1) * self.dilations[i] + 1

    def resolve(self, spatial: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
        """(pads_begin, pads_end, output sizes) for an input's spatial shape."""
        n = len(self.kernel)
        begin, end, out = [], [], []
        for i in range(n):
            size, ext, s = int(spatial[i]), self.extent(i), self.strides[i]
            if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-size // s)
                total = max((o - 1) * s + ext - size, 0)
                small = total // 2
                b, e = (small, total - small) if self.auto_pad == "SAME_UPPER" else (total - small, small)
            elif self.auto_pad == "VALID":
                b, e = 0, 0
                o = (size - ext) // s + 1
            else:
                b, e = self.pads[i], self.pads[i + n]
                span = size + b + e - ext
                o = (math.ceil(span / s) if self.ceil_mode else span // s) + 1
                if self.ceil_mode and (o - 1) * s >= size + b:  # last window must start inside
                    o -= 1
            begin.append(b)
            end.append(e)
            out.append(o)
        return begin, end, out

    def padded(self, x: np.ndarray, value: float = 0) -> tuple[np.ndarray, list[int]]:
        """``x`` (N, C, *spatial) padded so that every window fits; returns it and the output sizes."""
        begin, end, out = self.resolve(x.shape[2:])
        extra = [max((o - 1) * s + self.extent(i) - (x.shape[2 + i] + b + e), 0)
                 for i, (o, s, b, e) in enumerate(zip(out, self.strides, begin, end, strict=True))]
        widths = [(0, 0), (0, 0)] + [(b, e + x_) for b, e, x_ in zip(begin, end, extra, strict=True)]
        if any(w != (0, 0) for w in widths):
            x = np.pad(x, widths, constant_values=value)
        return x, out

    def taps(self, xp: np.ndarray, out: Sequence[int]) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """(kernel index, strided view of ``xp`` with the output's spatial shape) for each tap."""
        for k in np.ndindex(*self.kernel):
            sl = tuple(
                slice(k[i] * self.dilations[i], k[i] * self.dilations[i] + (out[i] - 1) * self.strides[i] + 1,
                      self.strides[i])
                for i in range(len(self.kernel))
            )
            yield k, xp[(slice(None), slice(None), *sl)]

    def columns(self, xp: np.ndarray, out: Sequence[int]) -> np.ndarray:
        """im2col: (N, *out, C, *kernel) view-then-copy of the windows of ``xp`` (N, C, *spatial)."""
        n = len(self.kernel)
        ext = [self.extent(i) for i in range(n)]
        win = np.lib.stride_tricks.sliding_window_view(xp, ext, axis=tuple(range(2, 2 + n)))
        pos = tuple(slice(0, (out[i] - 1) * self.strides[i] + 1, self.strides[i]) for i in range(n))
        tap = tuple(slice(None, None, self.dilations[i]) for i in range(n))
        win = win[(slice(None), slice(None), *pos, *tap)]  # (N, C, *out, *kernel)
        order = (0, *range(2, 2 + n), 1, *range(2 + n, 2 + 2 * n))
        return win.transpose(order)
