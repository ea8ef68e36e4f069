"""Integer and float32 arithmetic primitives of the engine, usable on raw parameters.

This module owns the *primitives*; which of them a kernel uses is decided by the
numerics profile (``profiles.py``) and applied by ``requant.py``. Everything here works
on numpy arrays (int64 for integers, so that int32 products never overflow) and on
Python scalars.

Rounding modes (``ROUNDING_MODES``), applied to an exact value ``v``:
``half_even`` (RNE), ``half_up`` (ties toward +inf), ``half_down`` (ties toward -inf),
``half_away`` (ties away from zero), ``floor``, ``truncate`` (toward zero).
``tflite_double`` is not a rounding of one value but TFLite's two-step fixed-point
scheme (SRDHM then RDBPOT), available only with a 31-bit fixed-point multiplier.

The TFLite / TFLM / CMSIS-NN primitives follow the formulas of
``docs/arithmetic.md`` (TFLite, TFLite Micro, CMSIS-NN) (written from the formulas, not copied code):
``quantize_multiplier``, ``saturating_rounding_doubling_high_mul``,
``rounding_divide_by_pot``, ``multiply_by_quantized_multiplier`` (double rounding),
``multiply_by_quantized_multiplier_single_rounding``, ``multiply_by_quantized_multiplier_s64``
(int64 input, reduced 16-bit multiplier), ``add_params``, ``elementwise_add`` and
``elementwise_mul`` (the int8/int16 kernels with explicit multipliers and shifts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

ROUNDING_MODES = ("half_even", "half_up", "half_down", "half_away", "floor", "truncate", "tflite_double")

I64 = np.int64
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


_clip_ufunc: Any = getattr(getattr(np, "_core", None) or np.core, "umath").clip  # noqa: B009
# numpy's clip ufunc itself (np._core.umath; np.core.umath on numpy 1.x): np.clip adds several
# microseconds of Python per call


def clip_into(v: np.ndarray, lo: float, hi: float, out: np.ndarray | None = None) -> np.ndarray:
    """``np.clip(v, lo, hi, out=v)`` without the wrapper's overhead (``v`` a writable array);
    with ``out`` (integer codes), the clamped values are written there, cast (they are integral)."""
    res: np.ndarray = _clip_ufunc(v, lo, hi, out=v if out is None else out, casting="unsafe")
    return res


def as_i64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=I64)


# ---------------------------------------------------------------- integer ranges


def wrap(x: Any, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers to a signed ``bits``-bit range."""
    v = as_i64(x)
    if bits >= 64:
        return v
    half = 1 << (bits - 1)
    return ((v + half) & ((1 << bits) - 1)) - half


def saturate(x: Any, bits: int) -> np.ndarray:
    """Clamp integers to a signed ``bits``-bit range."""
    v = as_i64(x)
    if bits >= 64:
        return v
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def limit(x: Any, bits: int, overflow: str) -> np.ndarray:
    """Apply an accumulator policy: ``exact`` (no limit), ``wrap`` or ``saturate``."""
    if overflow == "exact":
        return as_i64(x)
    if overflow == "wrap":
        return wrap(x, bits)
    if overflow == "saturate":
        return saturate(x, bits)
    raise ValueError(f"unknown overflow policy {overflow!r}; known: exact, wrap, saturate")


# ---------------------------------------------------------------- rounding


def round_shift(x: Any, shift: Any, mode: str) -> np.ndarray:
    """``x / 2**shift`` rounded by ``mode`` (exact integer arithmetic); ``shift < 0`` shifts left."""
    v = as_i64(x)
    s = as_i64(shift)
    if not np.any(s):
        return v + 0
    left = np.maximum(-s, 0)
    right = np.maximum(s, 0)
    v = v << left
    one = as_i64(1)
    half = np.where(right > 0, one << np.maximum(right - 1, 0), 0)
    q = v >> right  # floor
    if mode == "floor":
        return q
    r = v - (q << right)  # remainder in [0, 2**right)
    if mode == "truncate":
        return q + ((v < 0) & (r != 0))
    if mode == "half_up":
        return q + (r >= half) * (right > 0)
    if mode == "half_down":
        return q + (r > half) * (right > 0)
    if mode == "half_away":
        up = np.where(v < 0, r > half, r >= half)
        return q + up * (right > 0)
    if mode == "half_even":
        up = (r > half) | ((r == half) & ((q & 1) == 1))
        return q + up * (right > 0)
    raise ValueError(f"rounding {mode!r} is not a single rounding; known: {', '.join(ROUNDING_MODES[:-1])}")


def round_float(v: Any, mode: str) -> np.ndarray:
    """Round float values (taken as exact) to integers, returned as float64."""
    x = np.asarray(v, dtype=np.float64)
    if mode == "half_even":
        return np.rint(x)
    if mode == "half_up":
        return np.floor(x + 0.5)
    if mode == "half_down":
        return np.ceil(x - 0.5)
    if mode == "half_away":
        return np.copysign(np.floor(np.abs(x) + 0.5), x)
    if mode == "floor":
        return np.floor(x)
    if mode == "truncate":
        return np.trunc(x)
    raise ValueError(f"rounding {mode!r} is not a single rounding; known: {', '.join(ROUNDING_MODES[:-1])}")


def round_fraction(v: Fraction, mode: str) -> int:
    """Round an exact rational by ``mode``."""
    fl = math.floor(v)
    rem = v - fl
    if mode == "floor":
        return fl
    if mode == "truncate":
        return fl if v >= 0 or rem == 0 else fl + 1
    half = Fraction(1, 2)
    if rem != half:
        return fl + (1 if rem > half else 0)
    tie = {"half_even": fl + (fl & 1), "half_up": fl + 1, "half_down": fl,
           "half_away": fl + 1 if v > 0 else fl}
    if mode not in tie:
        raise ValueError(f"unknown rounding {mode!r}")
    return tie[mode]


def round_exact(
    approx: np.ndarray, exact_at: Callable[[int], Fraction], mode: str, magnitude: np.ndarray | None = None
) -> np.ndarray:
    """Round values exactly, given float64 approximations.

    The approximation's absolute error must stay below ``magnitude * 2**-46``
    (``magnitude`` defaults to ``|approx|``, i.e. a relative error bound).

    Only elements whose approximation lies near a rounding boundary (a half-integer for
    the ``half_*`` modes, an integer for ``floor``/``truncate``) are recomputed exactly by
    ``exact_at(flat_index)``; the others round the same either way.
    """
    a = np.asarray(approx, dtype=np.float64)
    out = round_float(a, mode).astype(I64)
    tol = np.abs(a if magnitude is None else magnitude) * 2.0**-44 + 2.0**-60
    frac = a - np.floor(a)
    boundary = np.abs(frac - 0.5) if mode.startswith("half") else np.minimum(frac, 1 - frac)
    flat = out.reshape(-1)
    for i in np.flatnonzero((boundary <= tol).reshape(-1)):
        flat[i] = round_fraction(exact_at(int(i)), mode)
    return out


# ---------------------------------------------------------------- float32 helpers


def fl32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def fma32(a: Any, b: Any, c: Any) -> np.ndarray:
    """``fl32(a*b + c)`` with one rounding, for float32 operands (as a hardware FMA).

    The product is exact in float64; the sum is rounded to odd in float64 (error-free
    two-sum), so the final rounding to float32 is correct (no double rounding).
    """
    p = fl32(a).astype(np.float64) * fl32(b).astype(np.float64)
    c64 = fl32(c).astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    bits = np.asarray(s, dtype=np.float64).view(I64).copy()
    inexact = err != 0
    toward_zero = inexact & ((err < 0) != (s < 0))
    bits = np.where(toward_zero, bits - 1, bits)
    bits = np.where(inexact, bits | 1, bits)
    return bits.view(np.float64).astype(np.float32)


# ---------------------------------------------------------------- TFLite / CMSIS-NN


def quantize_multiplier(real_multiplier: float, bits: int = 31) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``m ~= M * 2**(shift - bits)`` with ``M`` in [2**(bits-1), 2**bits).

    ``M`` is rounded half away from zero from the double mantissa; ``M == 2**bits``
    becomes ``2**(bits-1)`` with ``shift + 1``; a shift below -31 flushes to (0, 0).
    """
    if real_multiplier == 0.0:
        return 0, 0
    if real_multiplier < 0 or not math.isfinite(real_multiplier):
        raise ValueError(f"multiplier must be finite and >= 0, got {real_multiplier}")
    q, shift = math.frexp(real_multiplier)
    m = int(Fraction(q) * (1 << bits) + Fraction(1, 2))  # half away (q > 0)
    if m == 1 << bits:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return m, shift


def saturating_rounding_doubling_high_mul(a: Any, b: Any) -> np.ndarray:
    """SRDHM: ``a*b / 2**31`` rounded half up; the single overflow ``a == b == -2**31`` saturates."""
    x, y = as_i64(a), as_i64(b)
    ab = x * y
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    r = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division truncates toward zero
    return np.where((x == INT32_MIN) & (y == INT32_MIN), INT32_MAX, r)


def rounding_divide_by_pot(x: Any, exponent: Any) -> np.ndarray:
    """RDBPOT: ``x / 2**exponent`` rounded half away from zero."""
    return round_shift(x, exponent, "half_away")


def multiply_by_quantized_multiplier(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite's default (double rounding): ``RDBPOT(SRDHM(x << max(shift,0), M), max(-shift,0))``."""
    s = as_i64(shift)
    shifted = wrap(as_i64(x) << np.maximum(s, 0), 32)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), np.maximum(-s, 0))


def multiply_by_quantized_multiplier_single_rounding(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """``TFLITE_SINGLE_ROUNDING`` / CMSIS-NN single rounding: ``(x*M + 2**(t-1)) >> t``, ``t = 31 - shift``."""
    return round_shift(as_i64(x) * as_i64(multiplier), 31 - as_i64(shift), "half_up")


def multiply_by_quantized_multiplier_s64(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """int64 accumulator variant (int16x8 conv/FC): reduced 16-bit multiplier, one half-up rounding."""
    m = as_i64(multiplier)
    m16 = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    return round_shift(as_i64(x) * m16, 15 - as_i64(shift), "half_up")


def add_params(s1: float, s2: float, s_out: float, left_shift: int) -> tuple[int, int, int, int, int, int]:
    """TFLite ADD parameters from float scales: ``(M1, sh1, M2, sh2, Mo, sho)`` (double arithmetic)."""
    twice_max = 2.0 * max(float(s1), float(s2))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(s_out)))
    return m1, sh1, m2, sh2, mo, sho


def elementwise_add(
    in1: Any, in2: Any, *,
    input1_offset: int, input1_mult: int, input1_shift: int,
    input2_offset: int, input2_mult: int, input2_shift: int,
    left_shift: int, out_mult: int, out_shift: int, out_offset: int,
    act_min: int, act_max: int, single_rounding: bool = False,
) -> np.ndarray:
    """TFLite/CMSIS-NN quantized ADD (int8: ``left_shift=20``; int16: 15) on raw parameters."""
    mbqm = multiply_by_quantized_multiplier_single_rounding if single_rounding else multiply_by_quantized_multiplier
    v1 = mbqm((as_i64(in1) + input1_offset) << left_shift, input1_mult, input1_shift)
    v2 = mbqm((as_i64(in2) + input2_offset) << left_shift, input2_mult, input2_shift)
    out = mbqm(wrap(v1 + v2, 32), out_mult, out_shift) + out_offset
    return np.clip(out, act_min, act_max)


def elementwise_mul(
    in1: Any, in2: Any, *,
    input1_offset: int, input2_offset: int, out_mult: int, out_shift: int, out_offset: int,
    act_min: int, act_max: int, single_rounding: bool = False,
) -> np.ndarray:
    """TFLite/CMSIS-NN quantized MUL on raw parameters (both widths use the 32-bit scheme)."""
    mbqm = multiply_by_quantized_multiplier_single_rounding if single_rounding else multiply_by_quantized_multiplier
    prod = (as_i64(in1) + input1_offset) * (as_i64(in2) + input2_offset)
    out = mbqm(wrap(prod, 32), out_mult, out_shift) + out_offset
    return np.clip(out, act_min, act_max)
