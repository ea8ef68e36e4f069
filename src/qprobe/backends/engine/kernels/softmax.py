"""Softmax: float32 kernel; the integer form is added in a later step (runs as a float group)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec, Ungroupable


def build_softmax_float(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", -1))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0], np.float32)
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return [(e / e.sum(axis=axis, keepdims=True)).astype(np.float32)]

    return run


def build_softmax_int(spec: OpSpec) -> Kernel:
    raise Ungroupable("integer Softmax is not implemented yet")
