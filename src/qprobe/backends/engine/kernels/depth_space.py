"""DepthToSpace (modes DCR and CRD) and SpaceToDepth on NCHW tensors: pure data movement,
the same on codes and on floats (the ONNX definitions as reshape -> transpose -> reshape).

onnxruntime has no integer kernel for them: a QDQ DepthToSpace runs as float
DequantizeLinear -> DepthToSpace -> QuantizeLinear, which moves the same elements and, when
the output quantization differs, requantizes them as ``concat.code_requantizer`` does.
"""

from __future__ import annotations

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec
from qprobe.errors import UnsupportedOpError


def _mode(spec: OpSpec) -> str:
    mode = spec.attr("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode not in ("DCR", "CRD"):
        raise UnsupportedOpError(f"DepthToSpace node {spec.node!r}: mode {mode!r} is not DCR or CRD")
    return mode


def d2s(x: np.ndarray, b: int, mode: str) -> np.ndarray:
    n, c, h, w = x.shape
    if mode == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(t).reshape(n, c // (b * b), h * b, w * b)


def s2d(x: np.ndarray, b: int) -> np.ndarray:
    n, c, h, w = x.shape
    t = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return np.ascontiguousarray(t).reshape(n, c * b * b, h // b, w // b)


def depth_to_space(spec: OpSpec) -> Kernel:
    b, mode = int(spec.attr("blocksize", 1)), _mode(spec)
    return lambda args: [d2s(np.asarray(args[0]), b, mode)]


def space_to_depth(spec: OpSpec) -> Kernel:
    b = int(spec.attr("blocksize", 1))
    return lambda args: [s2d(np.asarray(args[0]), b)]
