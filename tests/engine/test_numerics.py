"""Rounding and fixed-point primitives against exact rational arithmetic (``fractions.Fraction``)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.builtin_profiles import get_profile
from qprobe.backends.engine.requant import Ratio, Requantizer

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None)
MODES = ("half_even", "half_up", "half_down", "half_away", "floor", "truncate")


def _oracle(v: Fraction, mode: str) -> int:
    fl = math.floor(v)
    frac = v - fl
    if mode == "floor":
        return fl
    if mode == "truncate":
        return int(v)  # int() of a Fraction truncates toward zero
    if frac != Fraction(1, 2):
        return fl + (frac > Fraction(1, 2))
    return {"half_even": fl + fl % 2, "half_up": fl + 1, "half_down": fl, "half_away": fl + (v > 0)}[mode]


@SETTINGS
@given(x=st.integers(-(2**40), 2**40), shift=st.integers(0, 20), mode=st.sampled_from(MODES))
def test_round_shift_matches_rational_rounding(x: int, shift: int, mode: str) -> None:
    assert int(nx.round_shift(x, shift, mode)) == _oracle(Fraction(x, 2**shift), mode)


@SETTINGS
@given(num=st.integers(-(10**6), 10**6), den=st.integers(1, 64), mode=st.sampled_from(MODES))
def test_round_float_and_round_fraction_agree_with_the_oracle(num: int, den: int, mode: str) -> None:
    v = Fraction(num, den)
    assert nx.round_fraction(v, mode) == _oracle(v, mode)
    if (den & (den - 1)) == 0:  # dyadic: exact in float64
        assert int(nx.round_float(num / den, mode)) == _oracle(v, mode)


@SETTINGS
@given(m=st.floats(1e-8, 1e4, allow_nan=False), bits=st.sampled_from([15, 16, 22, 31]))
def test_quantize_multiplier_is_the_nearest_fixed_point(m: float, bits: int) -> None:
    mult, shift = nx.quantize_multiplier(m, bits)
    assert 2 ** (bits - 1) <= mult < 2**bits
    err = abs(Fraction(mult) * Fraction(2) ** (shift - bits) - Fraction(m))
    assert err <= Fraction(2) ** (shift - bits) / 2


@SETTINGS
@given(a=st.integers(-(2**31), 2**31 - 1), b=st.integers(-(2**31), 2**31 - 1))
def test_srdhm_rounds_half_up(a: int, b: int) -> None:
    got = int(nx.saturating_rounding_doubling_high_mul(a, b))
    if a == b == -(2**31):
        assert got == 2**31 - 1
    else:
        assert got == _oracle(Fraction(a * b, 2**31), "half_up")


@SETTINGS
@given(a=st.floats(-1e6, 1e6, width=32), b=st.floats(-1e6, 1e6, width=32), c=st.floats(-1e6, 1e6, width=32))
def test_fma32_rounds_once(a: float, b: float, c: float) -> None:
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    got = Fraction(float(nx.fma32(np.float32(a), np.float32(b), np.float32(c))))
    # the nearest float32 (ties to even): no other float32 is closer
    lo, hi = np.nextafter(np.float32(got), np.float32(-np.inf)), np.nextafter(np.float32(got), np.float32(np.inf))
    assert abs(got - exact) <= abs(Fraction(float(lo)) - exact)
    assert abs(got - exact) <= abs(Fraction(float(hi)) - exact)


@SETTINGS
@given(acc=st.lists(st.integers(-(2**24), 2**24), min_size=1, max_size=20),
       sx=st.floats(0.0001220703125, 1.0, width=32), sw=st.floats(0.0001220703125, 1.0, width=32),
       sy=st.floats(0.0001220703125, 1.0, width=32),
       zp=st.integers(-128, 127), pow2=st.booleans())
def test_exact_requantizer_is_rational_rne(acc: list[int], sx: float, sw: float, sy: float, zp: int,
                                           pow2: bool) -> None:
    if pow2:  # power-of-two ratios make ties frequent
        sy = float(np.float32(sx) * np.float32(sw) * np.float32(2.0 ** round(math.log2(max(sy, 1e-3) * 8))))
    ratio = Ratio.of([sx, sw], [sy])
    rq = Requantizer(get_profile("exact").classes["conv"], ratio, np.asarray([zp]), -(2**40), 2**40)
    got = rq(np.asarray(acc, np.int64))
    f = Fraction(float(np.float32(sx))) * Fraction(float(np.float32(sw))) / Fraction(float(np.float32(sy)))
    assert [int(v) for v in got] == [_oracle(a * f, "half_even") + zp for a in acc]


@pytest.mark.parametrize("mode", MODES)
def test_fixed_point_requantizer_matches_its_definition(mode: str) -> None:
    num = get_profile("exact").classes["conv"].with_knobs({"scale": "fixed", "multiplier_bits": 16, "rounding": mode})
    acc = np.arange(-5000, 5000, 7, dtype=np.int64)
    rq = Requantizer(num, Ratio.of([0.02], [0.37]), np.asarray([3]), -(2**40), 2**40)
    mult, shift = nx.quantize_multiplier(float(np.float32(0.02)) / float(np.float32(0.37)), 16)
    want = [_oracle(Fraction(int(a) * mult, 2 ** (16 - shift)), mode) + 3 for a in acc]
    assert list(rq(acc)) == want
