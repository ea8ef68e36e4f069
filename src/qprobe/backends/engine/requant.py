"""Profile-driven requantization: integer accumulator -> output codes.

A kernel hands over an exact integer accumulator, the real multiplier as float32
factors (``Ratio``: prod(num)/prod(den), per channel) and the output quantization; the
``Numerics`` knobs decide how the multiplier is represented and how the result is
rounded. Knobs read here: ``scale``, ``multiplier_bits``, ``rounding``, ``zero_point``.

``scale`` values:
* ``float32``: onnxruntime's MLAS requantization: ``m = fl32(fl32(num0*num1)/den0)``
  evaluated left to right in float32, ``v = fl32(fl32(acc) * m)``.
* ``double``: ``m`` in float64 (left to right), ``v = acc * m`` in float64.
* ``exact``: ``acc * m`` as an exact rational on the float32 factors.
* ``fixed``: ``(M, shift) = quantize_multiplier(m_double, multiplier_bits)``, then
  ``acc * M`` shifted right with the rounding mode (``tflite_double``: TFLite's SRDHM +
  RDBPOT, 31-bit multipliers only).
* ``pow2``: ``m`` rounded to the nearest power of two, a pure shift.

``zero_point``: ``after`` adds the output zero point to the rounded value (the ONNX
rule); ``before`` adds it to the value before rounding (onnxruntime's QLinearAdd).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.profiles import Numerics
from qprobe.tensors import along_axis


@dataclass(frozen=True)
class Ratio:
    """A real multiplier ``prod(num) / prod(den)`` of float32 factors (scalars or 1-D per channel)."""

    num: tuple[np.ndarray, ...]
    den: tuple[np.ndarray, ...] = ()

    @classmethod
    def of(cls, num: Sequence[object], den: Sequence[object] = ()) -> Ratio:
        return cls(tuple(nx.fl32(v).reshape(-1) for v in num), tuple(nx.fl32(v).reshape(-1) for v in den))

    def _fold(self, dtype: type) -> np.ndarray:
        v: np.ndarray = self.num[0].astype(dtype)
        for n in self.num[1:]:
            v = (v * n.astype(dtype)).astype(dtype)
        for d in self.den:
            v = (v / d.astype(dtype)).astype(dtype)
        return np.asarray(v)

    @functools.cached_property
    def _f32(self) -> np.ndarray:
        return self._fold(np.float32)

    @functools.cached_property
    def _f64(self) -> np.ndarray:
        return self._fold(np.float64)

    def float32(self) -> np.ndarray:
        return self._f32

    def double(self) -> np.ndarray:
        return self._f64

    def fractions(self) -> list[Fraction]:
        size = max(v.size for v in self.num + self.den)
        out = []
        for c in range(size):
            f = Fraction(1)
            for n in self.num:
                f *= Fraction(float(n[c % n.size]))
            for d in self.den:
                f /= Fraction(float(d[c % d.size]))
            out.append(f)
        return out


_shaped = along_axis  # qprobe.tensors: the one broadcast helper


@dataclass(frozen=True)
class Requantizer:
    """``acc -> clamp(round(acc * ratio) + zp, lo, hi)`` under one ``Numerics``.

    ``zero_point`` is scalar or per channel (same length as the ratio); ``lo``/``hi``
    are the output clamp in codes (type range intersected with folded Relu/Clip).
    """

    numerics: Numerics
    ratio: Ratio
    zero_point: np.ndarray
    lo: int
    hi: int
    _factors: dict[tuple[int, int | None, type], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, acc: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
        a = nx.as_i64(acc)
        zp = _shaped(nx.as_i64(self.zero_point).reshape(-1), a.ndim, channel_axis)
        rep = self.numerics.scale
        if rep == "float32":
            out = self._float(a, zp, channel_axis, np.float32)
        elif rep == "double":
            out = self._float(a, zp, channel_axis, np.float64)
        elif rep == "exact":
            out = self._exact(a, zp, channel_axis)
        elif rep in ("fixed", "pow2"):
            out = self._fixed(a, zp, channel_axis)
        else:
            raise ValueError(f"unknown scale representation {rep!r}")
        return np.clip(out, self.lo, self.hi)

    def from_float(self, acc: np.ndarray, channel_axis: int | None = None, out: np.ndarray | None = None
                   ) -> np.ndarray:
        """The same on an accumulator held as exact integers in a float array (a BLAS result).

        float32 (``|acc| < 2**24``) and float64 accumulators skip the int64 round trip for
        ``scale`` = ``float32``/``double``; the result holds codes as floats. ``acc`` may be
        overwritten. ``out`` (an integer array of ``acc``'s shape) receives the codes instead.
        """
        rep, num = self.numerics.scale, self.numerics
        if rep == "float32" and acc.dtype == np.float64:
            # exact integers below 2**53: float64 -> float32 rounds the exact value to nearest even,
            # as int32 -> float32 does in onnxruntime's requantizer (``fl32(acc)``)
            acc = acc.astype(np.float32)
        if rep not in ("float32", "double") or (rep == "float32" and acc.dtype != np.float32):
            codes = self(np.rint(acc).astype(np.int64), channel_axis)
            if out is None:
                return codes
            out[...] = codes
            return out
        dt = np.float32 if rep == "float32" else np.float64
        m, zp = self._float_factors(acc.ndim, channel_axis, dt)
        v = np.multiply(acc, m, out=acc) if acc.dtype == dt else np.multiply(acc, m, dtype=dt)
        if num.zero_point == "before":
            v += zp
        if num.rounding == "half_even":
            np.rint(v, out=v)
        else:
            v = nx.round_float(v, num.rounding).astype(dt)
        if num.zero_point != "before":
            v += zp
        return nx.clip_into(v, self.lo, self.hi, out)

    def _float_factors(self, ndim: int, axis: int | None, dt: type) -> tuple[np.ndarray, np.ndarray]:
        """The multiplier and zero point shaped for ``from_float`` (kept per layout: built once)."""
        key = (ndim, axis, dt)
        found = self._factors.get(key)
        if found is None:
            m = self.ratio.float32() if dt is np.float32 else self.ratio.double()
            found = (_shaped(m, ndim, axis), _shaped(self.zero_point.astype(dt), ndim, axis))
            self._factors[key] = found
        return found

    def _float(self, a: np.ndarray, zp: np.ndarray, axis: int | None, dt: type) -> np.ndarray:
        m = self.ratio.float32() if dt is np.float32 else self.ratio.double()
        v: np.ndarray = np.asarray(a.astype(dt) * _shaped(m, a.ndim, axis), dtype=dt)
        before = self.numerics.zero_point == "before"
        if before:
            v = np.asarray(v + zp.astype(dt), dtype=dt)
        v = np.clip(v, -(2.0**40), 2.0**40)  # the final clamp makes this invisible
        r = nx.round_float(v, self.numerics.rounding).astype(np.int64)
        return r if before else r + zp

    def _exact(self, a: np.ndarray, zp: np.ndarray, axis: int | None) -> np.ndarray:
        fr = self.ratio.fractions()
        before = self.numerics.zero_point == "before"
        approx = a.astype(np.float64) * _shaped(self.ratio.double(), a.ndim, axis)
        zpb = np.broadcast_to(zp, a.shape)
        magnitude = np.abs(approx) + np.abs(zpb)
        if before:
            approx = approx + zpb
        chan = _channel_index(a.shape, axis, len(fr))
        flat_a, flat_z = a.reshape(-1), zpb.reshape(-1)

        def exact_at(i: int) -> Fraction:
            v = Fraction(int(flat_a[i])) * fr[int(chan[i])]
            return v + int(flat_z[i]) if before else v

        r = nx.round_exact(approx, exact_at, self.numerics.rounding, magnitude)
        return r if before else r + zp

    def _fixed(self, a: np.ndarray, zp: np.ndarray, axis: int | None) -> np.ndarray:
        mult, shift = fixed_point(self.ratio.double(), self.numerics)
        m = _shaped(mult, a.ndim, axis)
        s = _shaped(shift, a.ndim, axis)
        mode = self.numerics.rounding
        if mode == "tflite_double":
            return nx.multiply_by_quantized_multiplier(nx.wrap(a, 32), m, s) + zp
        right = np.broadcast_to(self.numerics.multiplier_bits - s if self.numerics.scale == "fixed" else -s, a.shape)
        before = self.numerics.zero_point == "before"
        zpb = np.broadcast_to(zp, a.shape)
        inside = before & (right > 0)  # zero point folded in before a right shift
        if np.abs(a).max(initial=0) < 2**31:  # a*M stays inside int64
            pre = np.where(inside, zpb << np.maximum(right, 0), 0)
            r = nx.round_shift(a * m + pre, right, mode)
        else:
            r = _round_big(a, np.broadcast_to(m, a.shape), right, zpb, inside, mode)
        return r + np.where(inside, 0, zpb)


def fixed_point(m: np.ndarray, num: Numerics) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel integer multiplier and shift for ``scale`` = ``fixed`` or ``pow2``.

    ``fixed``: ``m ~= M * 2**(shift - bits)`` (TFLite's convention for bits = 31).
    ``pow2``: ``M = 1`` and ``m ~= 2**shift``.
    """
    flat = np.asarray(m, dtype=np.float64).reshape(-1)
    if num.scale == "pow2":
        shifts = [round(math.log2(v)) if v > 0 else -64 for v in flat]
        return np.ones(flat.size, dtype=np.int64), np.asarray(shifts, dtype=np.int64)
    pairs = [nx.quantize_multiplier(float(v), num.multiplier_bits) for v in flat]
    return np.asarray([p[0] for p in pairs], dtype=np.int64), np.asarray([p[1] for p in pairs], dtype=np.int64)


def _round_big(
    a: np.ndarray, m: np.ndarray, right: np.ndarray, zp: np.ndarray, inside: np.ndarray, mode: str
) -> np.ndarray:
    """Exact fallback with Python integers for accumulators of 2**31 and more."""
    out = np.empty(a.shape, dtype=np.int64)
    for i in np.ndindex(a.shape):
        v = Fraction(int(a[i]) * int(m[i])) / Fraction(2) ** int(right[i])
        out[i] = nx.round_fraction(v + int(zp[i]) if inside[i] else v, mode)
    return out


def _channel_index(shape: tuple[int, ...], axis: int | None, channels: int) -> np.ndarray:
    size = int(np.prod(shape)) if shape else 1
    if channels == 1 or axis is None:
        return np.zeros(size, dtype=np.int64)
    axis %= len(shape)
    idx = np.arange(shape[axis]).reshape([-1 if d == axis else 1 for d in range(len(shape))])
    return np.broadcast_to(idx, shape).reshape(-1)


def fixed_requantizer(
    multiplier: Sequence[int] | int, shift: Sequence[int] | int, zero_point: int, lo: int, hi: int,
    rounding: str = "tflite_double",
) -> _RawFixed:
    """A requantizer from raw TFLite/CMSIS-NN parameters (M, shift), for tests and tools."""
    return _RawFixed(nx.as_i64(multiplier).reshape(-1), nx.as_i64(shift).reshape(-1), zero_point, lo, hi, rounding)


@dataclass(frozen=True)
class _RawFixed:
    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int
    lo: int
    hi: int
    rounding: str

    def __call__(self, acc: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
        a = nx.as_i64(acc)
        m = _shaped(self.multiplier, a.ndim, channel_axis)
        s = _shaped(self.shift, a.ndim, channel_axis)
        if self.rounding == "tflite_double":
            v = nx.multiply_by_quantized_multiplier(nx.wrap(a, 32), m, s)
        elif self.rounding == "s64":
            v = nx.multiply_by_quantized_multiplier_s64(a, m, s)
        else:
            v = nx.round_shift(a * m, 31 - s, self.rounding)
        return np.clip(v + self.zero_point, self.lo, self.hi)
