"""Normalizations of float islands: BatchNormalization (inference), InstanceNormalization,
LayerNormalization. No integer form: in a QDQ graph they run between a DequantizeLinear and
a QuantizeLinear, as onnxruntime runs them.

Each computes in float32 with onnxruntime's CPU formulas (matched bit for bit on the
tests' shapes, tests/engine/test_norm.py):

* BatchNormalization: ``k = fl32(1 / sqrt(var + eps)) * scale``, ``b' = bias - mean * k``,
  ``y = x * k + b'`` per channel (no fused multiply-add);
* InstanceNormalization, per (n, c) row of ``W`` elements: ``m = sum(x) / W`` and
  ``q = sum((x - m)**2)`` with Eigen's vectorized row sum (``reduce.eigen_row_sums``),
  ``k = (1 / sqrt(q / W + eps)) * scale``, ``y = x * k + (bias - m * k)``;
* LayerNormalization over the axes from ``axis``: sequential float32 sums of ``x`` and
  ``x * x``, ``m = s / n``, ``d = sqrt(s2 / n - m * m + eps)``, ``y = (x - m) / d * scale + bias``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec
from qprobe.backends.engine.kernels.reduce import eigen_row_sums

F32 = np.float32


def _channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v, F32).reshape((1, -1) + (1,) * (ndim - 2))


def build_batch_norm(spec: OpSpec) -> Kernel:
    eps = F32(spec.attr("epsilon", 1e-5))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x, scale, bias, mean, var = (np.asarray(a, F32) for a in args[:5])
        k = np.multiply(np.divide(F32(1), np.sqrt(np.add(var, eps, dtype=F32)), dtype=F32), scale, dtype=F32)
        b = np.subtract(bias, np.multiply(mean, k, dtype=F32), dtype=F32)
        return [np.add(np.multiply(x, _channel(k, x.ndim), dtype=F32), _channel(b, x.ndim), dtype=F32)]

    return run


def build_instance_norm(spec: OpSpec) -> Kernel:
    eps = F32(spec.attr("epsilon", 1e-5))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x, scale, bias = (np.asarray(a, F32) for a in args[:3])
        n, c = x.shape[:2]
        rows = np.ascontiguousarray(x.reshape(n * c, -1))
        w = F32(rows.shape[1])
        mean = np.divide(eigen_row_sums(rows), w, dtype=F32)[:, None]
        dev = np.subtract(rows, mean, dtype=F32)
        sq = eigen_row_sums(np.multiply(dev, dev, dtype=F32))
        inv = np.divide(F32(1), np.sqrt(np.add(np.divide(sq, w, dtype=F32), eps, dtype=F32)), dtype=F32)
        k = np.multiply(inv, np.tile(scale, n), dtype=F32)[:, None]
        shift = np.subtract(np.tile(bias, n)[:, None], np.multiply(mean, k, dtype=F32), dtype=F32)
        return [np.add(np.multiply(rows, k, dtype=F32), shift, dtype=F32).reshape(x.shape)]

    return run


def build_layer_norm(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", -1))
    eps = F32(spec.attr("epsilon", 1e-5))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0], F32)
        start = axis % x.ndim
        rows = x.reshape(int(np.prod(x.shape[:start])), -1)
        scale = np.asarray(args[1], F32).reshape(-1)
        bias = np.asarray(args[2], F32).reshape(-1) if len(args) > 2 and args[2] is not None else None
        s = np.zeros(rows.shape[0], F32)
        s2 = np.zeros(rows.shape[0], F32)
        for j in range(rows.shape[1]):
            s = np.add(s, rows[:, j], dtype=F32)
            s2 = np.add(s2, np.multiply(rows[:, j], rows[:, j], dtype=F32), dtype=F32)
        n = F32(rows.shape[1])
        m = np.divide(s, n, dtype=F32)
        var = np.subtract(np.divide(s2, n, dtype=F32), np.multiply(m, m, dtype=F32), dtype=F32)
        d = np.sqrt(np.add(var, eps, dtype=F32))[:, None]
        y = np.multiply(np.divide(np.subtract(rows, m[:, None], dtype=F32), d, dtype=F32), scale, dtype=F32)
        if bias is not None:
            y = np.add(y, bias, dtype=F32)
        return [y.reshape(x.shape)]

    return run


NORMS = {"BatchNormalization": build_batch_norm, "InstanceNormalization": build_instance_norm,
         "LayerNormalization": build_layer_norm}
