"""TFLite / TFLM / CMSIS-NN fixed-point softmax, usable on raw integer parameters.

Written from the algorithm (gemmlowp fixed-point semantics, ``docs/arithmetic.md``
section 3.2 for SRDHM and RDBPOT), not from copied code. ``FixedPoint<int32, I>`` values
are handled as their raw int32 values held in int64 arrays; ``Q0`` means 0 integer bits
(raw / 2**31), ``Q5`` 5 integer bits (raw / 2**26).

* ``softmax_s8`` / ``softmax_s8_s16`` / ``softmax_u8``: TFLite's reference
  ``Softmax`` for 8-bit input (``arm_softmax_s8`` / ``arm_softmax_s8_s16``): the
  difference to the row maximum, scaled by ``SRDHM(d << shift, mult)`` into Q5, goes
  through ``exp_on_negative_values``; exps rescaled to Q12 (``RDBPOT`` by 12) are summed;
  the reciprocal of the sum comes from ``one_over_one_plus_x_for_x_in_0_1`` on the sum
  normalized to [1, 2); each output is ``RDBPOT(SRDHM(recip, exp), bits_over_unit + 31 -
  out_bits) + out_min``. A difference below ``diff_min`` gives exp 0 and the output minimum.
* ``softmax_params_s8(beta, input_scale)``: ``PreprocessSoftmaxScaling`` with 5 integer
  bits (``beta * s * 2**26`` as a Q31 multiplier with a left shift) and ``diff_min =
  -floor(31 * 2**26 / 2**shift)`` (``CalculateInputRadius``).
* ``softmax_s16``: TFLite's ``SoftmaxInt16`` (``arm_softmax_s16``): 513-entry Q15 tables
  (``softmax_s16_luts``, generated as TFLM's ``gen_lut`` does, in float32) read with a
  9-bit index and a 7-bit linear interpolation.

The sum is an int32 that wraps (rows longer than 4096 of equal values overflow it, as in C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from qprobe.backends.engine.numerics import (
    INT32_MAX,
    INT32_MIN,
    as_i64,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_single_rounding,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturate,
    saturating_rounding_doubling_high_mul,
    wrap,
)

SCALED_DIFF_INTEGER_BITS = 5
ACCUM_INTEGER_BITS = 12

_srdhm = saturating_rounding_doubling_high_mul
_rdbpot = rounding_divide_by_pot


def _q(value: float, integer_bits: int) -> int:
    """A constant in FixedPoint<int32, integer_bits>, rounded to nearest (gemmlowp's checked constants)."""
    return round(value * 2.0 ** (31 - integer_bits))


def saturating_shift_left(x: Any, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<+e>``: ``x << e`` saturated to int32."""
    return saturate(as_i64(x) << exponent, 32)


def count_leading_zeros32(x: Any) -> np.ndarray:
    """CLZ of ``x`` read as uint32 (32 for 0)."""
    u = as_i64(x) & 0xFFFFFFFF
    _m, e = np.frexp(u.astype(np.float64))  # exact: u < 2**53
    return np.where(u == 0, 32, 32 - e).astype(np.int64)


def _exp_on_quarter_interval(a: np.ndarray) -> np.ndarray:
    """exp(a) for a Q0 ``a`` in [-1/4, 0): a 4th-order Taylor expansion around -1/8."""
    c = _q(math.exp(-1.0 / 8.0), 0)
    one_third = _q(1.0 / 3.0, 0)
    x = a + (1 << 28)  # a + 1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_srdhm(x4_over_4 + x3, one_third) + x2, 1)  # x^4/24 + x^3/6 + x^2/2
    return c + _srdhm(c, x + poly)


def exp_on_negative_values(a: Any, integer_bits: int = SCALED_DIFF_INTEGER_BITS) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: exp of a non-positive FixedPoint<int32, integer_bits>, in Q0.

    ``a`` is split into ``a mod 1/4 - 1/4`` (in [-1/4, 0), evaluated by polynomial) and a
    multiple of 1/4 whose bits select the factors exp(-1/4), exp(-1/2), ... exp(-16).
    """
    a = as_i64(a)
    frac_bits = 31 - integer_bits
    quarter = 1 << (frac_bits - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_on_quarter_interval(saturating_shift_left(a_mod, integer_bits))
    remainder = a_mod - a
    for exponent in range(-2, min(integer_bits, 5)):
        factor = _q(math.exp(-(2.0**exponent)), 0)
        bit = 1 << (frac_bits + exponent)
        result = np.where((remainder & bit) != 0, _srdhm(result, factor), result)
    if integer_bits > 5:  # exp(x) for x < -32 is 0 in Q0
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def rounding_half_sum(a: Any, b: Any) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum``: ``(a + b + sign) / 2`` with C truncation."""
    s = as_i64(a) + as_i64(b)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t >> 1, -((-t) >> 1))


def one_over_one_plus_x_for_x_in_0_1(a: Any) -> np.ndarray:
    """gemmlowp: 1/(1 + a) for a Q0 ``a`` in [0, 1), in Q0, by 3 Newton-Raphson steps in Q2."""
    half_den = rounding_half_sum(a, INT32_MAX)  # (1 + a) / 2, Q0
    x = _q(48.0 / 17.0, 2) + _srdhm(half_den, _q(-32.0 / 17.0, 2))
    one_q2 = 1 << 29
    for _ in range(3):
        err = one_q2 - _srdhm(half_den, x)
        x = x + saturating_shift_left(_srdhm(x, err), 2)  # Q4 product rescaled to Q2
    return saturating_shift_left(x, 1)  # x / 2 in Q1, rescaled to Q0


def softmax_params_s8(beta: float, input_scale: float) -> tuple[int, int, int]:
    """``(input_multiplier, input_left_shift, diff_min)`` as TFLite prepares the 8-bit softmax."""
    bits = SCALED_DIFF_INTEGER_BITS
    real = min(float(beta) * float(input_scale) * float(1 << (31 - bits)), float(2**31 - 1))
    mult, shift = quantize_multiplier(real)
    if shift < 0 or shift > 30:
        raise ValueError(f"beta * input_scale = {real / 2**26:g} is outside TFLite's softmax range "
                         f"(left shift {shift})")
    radius = math.floor(((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << shift))
    return mult, shift, -radius


def _softmax_8bit_input(x: Any, mult: int, shift: int, diff_min: int, out_bits: int, out_min: int) -> np.ndarray:
    xi = as_i64(x)
    diff = xi - xi.max(axis=-1, keepdims=True)
    inside = diff >= diff_min
    exp_q0 = exp_on_negative_values(_srdhm(wrap(diff << shift, 32), mult))
    total = wrap(np.where(inside, _rdbpot(exp_q0, ACCUM_INTEGER_BITS), 0).sum(axis=-1, keepdims=True), 32)
    headroom = count_leading_zeros32(total)
    normalized = ((total & 0xFFFFFFFF) << headroom) & 0xFFFFFFFF  # in [2**31, 2**32): the sum in [1, 2)
    recip = one_over_one_plus_x_for_x_in_0_1(wrap(normalized - 2**31, 32))
    bits_over_unit = ACCUM_INTEGER_BITS - headroom
    out = _rdbpot(_srdhm(recip, exp_q0), bits_over_unit + 31 - out_bits) + out_min
    out_max = out_min + (1 << out_bits) - 1
    return np.where(inside, np.clip(out, out_min, out_max), out_min)


def softmax_s8(x: Any, mult: int, shift: int, diff_min: int) -> np.ndarray:
    """int8 softmax along the last axis; output scale 1/256, zero point -128 (``arm_softmax_s8``)."""
    return _softmax_8bit_input(x, mult, shift, diff_min, 8, -128)


def softmax_u8(x: Any, mult: int, shift: int, diff_min: int) -> np.ndarray:
    """uint8 softmax along the last axis; output scale 1/256, zero point 0 (TFLite's uint8 kernel)."""
    return _softmax_8bit_input(x, mult, shift, diff_min, 8, 0)


def softmax_s8_s16(x: Any, mult: int, shift: int, diff_min: int) -> np.ndarray:
    """int8 in, int16 out, along the last axis; output scale 1/65536, zero point -32768 (``arm_softmax_s8_s16``)."""
    return _softmax_8bit_input(x, mult, shift, diff_min, 16, INT32_MIN >> 16)


# ---------------------------------------------------------------- int16: lookup tables


def gen_lut_q15(
    func: Callable[[float], float], lo: float, hi: float, *, float32: bool = True, steps: int = 512
) -> np.ndarray:
    """TFLite ``gen_lut`` for int16: ``steps + 1`` Q15 entries of ``func`` on [lo, hi].

    Each sample is biased by half the rounded error of linear interpolation at the
    midpoint of its step; the last entry (``func(hi)``) only serves the last slope.
    ``float32``: every operation (and ``func``'s result) rounded to float32, as TFLM's
    ``gen_lut<float, ...>`` (the tables of CMSIS-NN's tests); otherwise double, as TFLite's
    ``gen_lut<double, ...>``. The two differ in a few entries of the 1/(1+x) table.
    """
    fl: Callable[[float], float] = (lambda v: float(np.float32(v))) if float32 else float

    def rnd(v: float) -> float:
        return float(math.copysign(math.floor(abs(v) + 0.5), v))  # std::round: half away from zero

    def at(i: int, extra: float = 0.0) -> float:
        return fl(func(fl(fl(lo + fl(i * step)) + extra))) * 32768.0  # exact scaling by 2**15

    step, out = fl((hi - lo) / steps), np.empty(steps + 1, np.int64)
    for i in range(steps):
        val = at(i)
        interp = rnd(fl(fl(at(i + 1) + rnd(val)) / 2))
        bias = rnd(fl(fl(interp - rnd(at(i, fl(step / 2)))) / 2))
        out[i] = min(max(rnd(val) - bias, -32768.0), 32767.0)
    out[steps] = min(max(rnd(fl(func(hi)) * 32768.0), -32768.0), 32767.0)
    return out.astype(np.int16)


def softmax_s16_luts(*, float32: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(exp on [-10, 0], 1/(1+x) on [0, 1]): the int16 softmax tables (TFLM's by default)."""
    return (gen_lut_q15(math.exp, -10.0, 0.0, float32=float32),
            gen_lut_q15(lambda v: 1.0 / (1.0 + v), 0.0, 1.0, float32=float32))


def lut_lookup_q15(value: Any, lut: np.ndarray) -> np.ndarray:
    """Read a 513-entry table at an int16 ``value``: 9-bit index, 7-bit linear interpolation."""
    v = as_i64(value)
    table = as_i64(lut)
    index = 256 + (v >> 7)
    base = table[index]
    delta = ((table[index + 1] - base) * (v & 0x7F) + 64) >> 7
    return wrap(base + delta, 16)


def softmax_s16(
    x: Any, mult: int, shift: int, exp_lut: np.ndarray, one_by_one_lut: np.ndarray, *, single_rounding: bool = False
) -> np.ndarray:
    """int16 softmax along the last axis; output scale 1/32768, zero point 0 (``SoftmaxInt16``).

    ``(mult, shift)`` maps ``x - max`` so that [-65535, 0] spans [-10, 0]: the quantized
    ``input_scale * beta / (10 / 65535)``.
    """
    mbqm = multiply_by_quantized_multiplier_single_rounding if single_rounding else multiply_by_quantized_multiplier
    xi = as_i64(x)
    scaled = mbqm(xi - xi.max(axis=-1, keepdims=True), mult, shift)
    exps = lut_lookup_q15(np.clip(scaled + 32767, -32768, 32767), exp_lut)
    total = wrap(exps.sum(axis=-1, keepdims=True), 32)  # Q16.15
    headroom_plus_one = count_leading_zeros32(total)
    shifted = ((total << (headroom_plus_one - 1)) + (1 << 13)) >> 14  # the sum in [1, 2) as [2**16, 2**17)
    recip = lut_lookup_q15(np.clip(shifted - (1 << 15) - (1 << 16), -32768, 32767), one_by_one_lut)
    right = 31 - headroom_plus_one
    out = (exps * recip + (as_i64(1) << (right - 1))) >> right
    return np.clip(out, 0, 32767)


def softmax_params_s16(beta: float, input_scale: float) -> tuple[int, int]:
    """``(input_multiplier, input_shift)`` of the int16 softmax: ``input_scale * beta / (10 / 65535)``."""
    return quantize_multiplier(float(input_scale) * float(beta) / (10.0 / 65535.0))
