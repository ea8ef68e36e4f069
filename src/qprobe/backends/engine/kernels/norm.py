"""Normalizations of float islands: BatchNormalization (inference), InstanceNormalization,
LayerNormalization. No integer form: in a QDQ graph they run between a DequantizeLinear and
a QuantizeLinear, as onnxruntime runs them.

Each computes in float32 with onnxruntime's CPU formulas
(onnxruntime/core/providers/cpu/nn/batch_norm.h, instance_norm.cc, layer_norm_impl.cc):

* BatchNormalization: ``k = fl32(1 / sqrt(var + eps)) * scale``, ``b' = bias - mean * k``,
  ``y = x * k + b'`` per channel (no fused multiply-add);
* InstanceNormalization, per (n, c) row of ``W`` elements: ``m = sum(x) / W`` and
  ``q = sum((x - m)**2)`` with Eigen's vectorized row sum (``reduce.eigen_row_sums``),
  ``k = (1 / sqrt(q / W + eps)) * scale``, ``y = x * k + (bias - m * k)``;
* LayerNormalization over the axes from ``axis``: the mean in float64 rounded to float32
  (what onnxruntime's Mean output shows), ``r = fl32(1 / sqrt(var + eps))`` from the float64
  variance, ``y = fma(fl32((x - m) * r), scale, bias)``. onnxruntime's own variance is
  computed differently (we did not pin it down): its InvStdDev differs in the last bit on a
  few percent of the rows, so outputs agree within about one ulp of the largest output.

BatchNormalization and InstanceNormalization were matched bit for bit on the tests'
shapes except where noted in tests/engine/test_norm_einsum.py; every kernel here is
within float32 rounding (a few ulp of the output's magnitude) of onnxruntime's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qprobe.backends.engine.kernels.base import Kernel, OpSpec
from qprobe.backends.engine.kernels.reduce import eigen_row_sums
from qprobe.backends.engine.numerics import fma32

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
    eps = float(F32(spec.attr("epsilon", 1e-5)))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0], F32)
        rows = x.reshape(int(np.prod(x.shape[: axis % x.ndim])), -1)
        wide = rows.astype(np.float64)
        mean64 = wide.mean(axis=1)
        inv = (1.0 / np.sqrt(((wide - mean64[:, None]) ** 2).mean(axis=1) + eps)).astype(F32)
        t = np.multiply(np.subtract(rows, mean64.astype(F32)[:, None], dtype=F32), inv[:, None], dtype=F32)
        scale = np.asarray(args[1], F32).reshape(-1)
        bias = np.asarray(args[2], F32).reshape(-1) if len(args) > 2 and args[2] is not None else np.zeros_like(scale)
        y = fma32(t, scale, bias).reshape(x.shape)
        extra = [mean64.astype(F32), inv][: len(spec.outputs) - 1]
        stat_shape = x.shape[: axis % x.ndim] + (1,) * (x.ndim - axis % x.ndim)
        return [y, *(e.reshape(stat_shape) for e in extra)]

    return run


NORMS = {"BatchNormalization": build_batch_norm, "InstanceNormalization": build_instance_norm,
         "LayerNormalization": build_layer_norm}
