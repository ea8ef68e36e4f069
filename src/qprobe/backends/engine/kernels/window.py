"""Sliding-window geometry shared by Conv and the pools (N-d; NCHW, or NHWC with ``last=True``).

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

    def pad_widths(self, spatial: Sequence[int]) -> tuple[list[tuple[int, int]], list[int]]:
        """(begin, end) padding per spatial axis so that every window fits, and the output sizes."""
        begin, end, out = self.resolve(spatial)
        extra = [max((o - 1) * s + self.extent(i) - (spatial[i] + b + e), 0)
                 for i, (o, s, b, e) in enumerate(zip(out, self.strides, begin, end, strict=True))]
        return [(b, e + x_) for b, e, x_ in zip(begin, end, extra, strict=True)], out

    def padded(self, x: np.ndarray, value: float = 0, last: bool = False) -> tuple[np.ndarray, list[int]]:
        """``x`` (N, C, *spatial), or (N, *spatial, C) with ``last``, padded so that every
        window fits; returns it and the output sizes."""
        first = 1 if last else 2
        pads, out = self.pad_widths(x.shape[first:first + len(self.kernel)])
        widths = [(0, 0), *pads, (0, 0)] if last else [(0, 0), (0, 0), *pads]
        if any(w != (0, 0) for w in widths):  # np.full + one copy: cheaper than np.pad
            grown = np.full([d + b + e for d, (b, e) in zip(x.shape, widths, strict=True)], value, dtype=x.dtype)
            grown[tuple(slice(b, b + d) for d, (b, _e) in zip(x.shape, widths, strict=True))] = x
            x = grown
        return x, out

    def tap_slices(self, out: Sequence[int]) -> list[tuple[slice, ...]]:
        """Per tap (``np.ndindex`` order over the kernel), the spatial slices of a padded input."""
        return [tuple(slice(k[i] * self.dilations[i], k[i] * self.dilations[i] + (out[i] - 1) * self.strides[i] + 1,
                            self.strides[i]) for i in range(len(self.kernel)))
                for k in np.ndindex(*self.kernel)]

    def taps(self, xp: np.ndarray, out: Sequence[int], last: bool = False
             ) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """(kernel index, strided view of ``xp`` with the output's spatial shape) for each tap."""
        for k, sl in zip(np.ndindex(*self.kernel), self.tap_slices(out), strict=True):
            yield k, xp[(slice(None), *sl)] if last else xp[(slice(None), slice(None), *sl)]
