"""Resize with ``mode = nearest``: per-axis source indices (ONNX Resize, opset 11+).

Coordinate transforms: half_pixel (default), asymmetric, align_corners,
pytorch_half_pixel, tf_half_pixel_for_nn; nearest modes: round_prefer_floor (default),
round_prefer_ceil, floor, ceil. The output selects input elements, so codes stay exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from qprobe.errors import UnsupportedOpError


def _text(attrs: Mapping[str, Any], name: str, default: str) -> str:
    v = attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def _source(o: np.ndarray, scale: float, n_in: int, n_out: int, transform: str) -> np.ndarray:
    if transform == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if transform == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(o)
    if transform == "asymmetric":
        return o / scale
    if transform == "align_corners":
        return o * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(o)
    if transform == "tf_half_pixel_for_nn":
        return (o + 0.5) / scale
    raise UnsupportedOpError(f"Resize: coordinate_transformation_mode {transform!r} is not supported")


def _nearest(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "round_prefer_floor":
        return np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
    if mode == "round_prefer_ceil":
        return np.where(x - np.floor(x) == 0.5, np.ceil(x), np.round(x))
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    raise UnsupportedOpError(f"Resize: nearest_mode {mode!r} is not supported")


def nearest_indices(
    attrs: Mapping[str, Any], shape: tuple[int, ...], scales: np.ndarray | None, sizes: np.ndarray | None
) -> list[np.ndarray | None]:
    """For each axis, the source index of every output position (None: axis unchanged)."""
    transform = _text(attrs, "coordinate_transformation_mode", "half_pixel")
    mode = _text(attrs, "nearest_mode", "round_prefer_floor")
    out: list[np.ndarray | None] = []
    for axis, n_in in enumerate(shape):
        if sizes is not None and np.asarray(sizes).size:
            n_out = int(np.asarray(sizes).reshape(-1)[axis])
            scale = n_out / n_in
        elif scales is not None and np.asarray(scales).size:
            scale = float(np.asarray(scales, np.float32).reshape(-1)[axis])
            n_out = int(math.floor(n_in * scale))
        else:
            raise UnsupportedOpError("Resize needs constant scales or sizes")
        if n_out == n_in and scale == 1.0:
            out.append(None)
            continue
        src = _source(np.arange(n_out, dtype=np.float64), scale, n_in, n_out, transform)
        idx = _nearest(src, mode).astype(np.int64)
        out.append(np.clip(idx, 0, n_in - 1))
    return out
