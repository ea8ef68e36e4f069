"""QuantizeLinear and DequantizeLinear at a float boundary (per tensor, per axis, blocked).

QuantizeLinear (class ``quantize``) reads ``scale``, ``rounding``, ``zero_point``:
``float32`` is onnxruntime's MLAS formula ``RNE(fl32(x / s)) + z`` (true division);
``exact`` rounds the rational ``x / s`` exactly (ONNX); ``double`` divides in float64
(``fixed`` and ``pow2`` have no meaning for float input and behave as ``double``).
DequantizeLinear reads ``scale``: ``float32`` is ``fl32(fl32(q - z) * s)`` (onnxruntime),
anything else rounds ``(q - z) * s`` once to float32 (identical for 8/16-bit codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.base import Kernel, OpSpec
from qprobe.backends.engine.profiles import Numerics
from qprobe.tensors import INT_RANGES, ONNX_INT_TYPES

# ONNX TensorProto data types of the integer outputs the engine produces
# the one dtype map: qprobe.tensors.ONNX_INT_TYPES (re-exported for the kernels)


def expand_param(p: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """A scale or zero point broadcast against a tensor of ``shape`` (per tensor, axis, or blocked)."""
    v = np.asarray(p)
    ndim = len(shape)
    if v.size == 1 and v.ndim <= 1:
        return v.reshape(())
    if block_size > 0:
        return np.repeat(v, block_size, axis=axis % ndim)[
            tuple(slice(0, shape[i]) if i == axis % ndim else slice(None) for i in range(ndim))]
    out = [1] * ndim
    out[axis % ndim] = v.size
    return v.reshape(out)


def output_dtype(spec: OpSpec, zp: np.ndarray | None = None) -> str:
    """The integer type of a QuantizeLinear: its zero point's, else ``output_dtype``, else uint8."""
    if zp is None and len(spec.inputs) > 2:
        zp = spec.const(2)
    if zp is not None:
        return str(np.asarray(zp).dtype)
    return ONNX_INT_TYPES.get(int(spec.attr("output_dtype", 2)), "uint8")


def quantize_float(x: np.ndarray, s: np.ndarray, z: np.ndarray, dtype: str, num: Numerics) -> np.ndarray:
    """``sat(round(x / s) + z)`` under the ``quantize`` class knobs (arrays broadcast).

    ``x`` may be float32 or float64 (taken as exact except for ``scale = float32``,
    which computes ``fl32(fl32(x) / s)`` as onnxruntime does).
    """
    lo, hi = INT_RANGES[dtype]
    before = num.zero_point == "before"
    s32 = nx.fl32(s)
    if num.scale == "float32" and num.rounding == "half_even" and not before:
        return _quantize_mlas(x, s32, z, lo, hi, dtype)
    if num.scale == "float32":
        v = (nx.fl32(x) / s32).astype(np.float32)
        if before:
            v = (v + z.astype(np.float32)).astype(np.float32)
        r = nx.round_float(_bounded(v), num.rounding)
    else:
        x64 = np.asarray(x, np.float64)
        approx = _bounded(x64 / s32.astype(np.float64) + (z if before else 0))
        if num.scale == "exact":
            xb, sb, zb = np.broadcast_arrays(x64, s32, z)
            xf, sf, zf = xb.reshape(-1), sb.reshape(-1), zb.reshape(-1)

            def exact_at(i: int) -> Fraction:
                q = Fraction(float(xf[i])) / Fraction(float(sf[i]))
                return q + int(zf[i]) if before else q

            r = nx.round_exact(approx, exact_at, num.rounding, np.abs(approx) + np.abs(z)).astype(np.float64)
        else:
            r = nx.round_float(approx, num.rounding)
    out = np.asarray(r).astype(np.int64) + (0 if before else z)
    return np.clip(out, lo, hi).astype(dtype)


def _quantize_mlas(x: np.ndarray, s32: np.ndarray, z: np.ndarray, lo: int, hi: int, dtype: str) -> np.ndarray:
    """MLAS's QuantizeLinear: ``v = fl32(x / s)`` clamped in float to ``[lo - z, hi - z]``, RNE, ``+ z``.
    The clamp is x86's MAXPS then MINPS, which return their second operand for a NaN: NaN
    becomes the low end, as ``np.fmax`` (the non-NaN operand) then ``np.minimum`` give."""
    v = np.divide(nx.fl32(x), s32, dtype=np.float32)
    zf = np.asarray(z, np.float32)
    np.fmax(v, lo - zf, out=v)
    np.minimum(v, hi - zf, out=v)
    np.rint(v, out=v)
    v += zf
    return v.astype(dtype)


def _bounded(v: np.ndarray) -> np.ndarray:
    """NaN to the low end (as MLAS on x86) and huge values clipped; the final clamp hides both."""
    return np.clip(np.nan_to_num(np.asarray(v, np.float64), nan=-(2.0**40)), -(2.0**40), 2.0**40)


def build_quantize(spec: OpSpec) -> Kernel:
    axis, block = int(spec.attr("axis", 1)), int(spec.attr("block_size", 0))

    shaped: dict[tuple[int, ...], tuple[object, object, str, np.ndarray, np.ndarray]] = {}

    def params(x: np.ndarray, args: Sequence[np.ndarray | None]) -> tuple[str, np.ndarray, np.ndarray]:
        """dtype and the scale and zero point shaped for ``x``; kept per shape while the same
        (constant) scale and zero point arrays come in."""
        s_in, given = args[1], args[2] if len(args) > 2 else None
        found = shaped.get(x.shape)
        if found is not None and found[0] is s_in and found[1] is given:
            return found[2], found[3], found[4]
        dtype = output_dtype(spec, given)
        zp = given if given is not None else np.zeros((), np.int64)
        s_b = expand_param(np.asarray(s_in, np.float32), x.shape, axis, block)
        z_b = expand_param(np.asarray(zp).astype(np.int64), x.shape, axis, block)
        shaped[x.shape] = (s_in, given, dtype, s_b, z_b)
        return dtype, s_b, z_b

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        dtype, s_b, z_b = params(x, args)
        return [quantize_float(x, s_b, z_b, dtype, spec.numerics)]

    return run


def build_dequantize(spec: OpSpec) -> Kernel:
    axis, block = int(spec.attr("axis", 1)), int(spec.attr("block_size", 0))
    ort = spec.numerics.scale == "float32"

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        q, s = np.asarray(args[0]), np.asarray(args[1], np.float32)
        zp = args[2] if len(args) > 2 and args[2] is not None else np.zeros((), np.int64)
        s_b = expand_param(s, q.shape, axis, block)
        z_b = expand_param(np.asarray(zp).astype(np.int64), q.shape, axis, block)
        d = q.astype(np.int64) - z_b
        if ort:
            return [(d.astype(np.float32) * s_b).astype(np.float32)]
        return [(d.astype(np.float64) * s_b.astype(np.float64)).astype(np.float32)]

    return run


def build_dynamic_quantize(spec: OpSpec) -> Kernel:
    """DynamicQuantizeLinear (uint8): scale and zero point from the tensor's range, in float32.

    The op is defined by a float32 function body (``round(x / y_scale)`` on a computed
    float32 scale), so its quantization is that float32 division, whatever the profile.
    """
    num = Numerics(scale="float32", rounding="half_even")

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0], np.float32)
        lo = np.float32(min(np.float32(0), x.min(initial=np.float32(0))))
        hi = np.float32(max(np.float32(0), x.max(initial=np.float32(0))))
        scale = np.float32((hi - lo) / np.float32(255))
        if scale == 0:
            scale = np.float32(1)
        zp = np.uint8(np.clip(np.rint(np.float32(0) - np.float32(lo / scale)), 0, 255))
        y = quantize_float(x, np.asarray(scale), np.asarray(int(zp)), "uint8", num)
        return [y, np.asarray(scale, np.float32), np.asarray(zp, np.uint8)]

    return run
