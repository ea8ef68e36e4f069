"""The affine eltwise unit (``structure = affine``) against the Neural-ART configuration
observed in a compiled model (st-edge-ai.md section 3.4: node Add_42 of a face-detection
model, ST Edge AI 2.1). Oracle: those register values and the unit's formula computed
here with Python integers.
"""

from __future__ import annotations

import numpy as np

from qprobe.backends.engine import get_profile
from qprobe.backends.engine.kernels.affine import make_affine, operand_coefficient
from qprobe.backends.engine.kernels.base import QType

X = QType.make(np.float32(0.104257), 15, "int8")
Y = QType.make(np.float32(0.123720), 22, "int8")
OUT = QType.make(np.float32(0.123720), 22, "int8")


def test_coefficients_reproduce_the_observed_registers() -> None:
    num = get_profile("arith16-wrap").classes["eltwise"]
    unit = make_affine([(X, 1.0), (Y, 1.0)], OUT, num)
    (a, b), c = unit.terms, unit.offset
    assert (a.value, a.shift) == (27613, 1)
    assert (b.value, b.shift) == (16384, 0)
    assert (c.value, c.shift) == (-25887, 3)


def test_unit_computes_its_formula_on_every_input_pair() -> None:
    num = get_profile("arith16-wrap").classes["eltwise"]
    unit = make_affine([(X, 1.0), (Y, 1.0)], OUT, num)
    x, y = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    got = unit(x, y)
    acc = (27613 * x >> 1) + (16384 * y) + (-25887 << 3)
    want = (acc + (1 << 13)) >> 14  # round half up at shift_o = 14
    np.testing.assert_array_equal(got, want)


def test_a_ratio_above_two_overflows_sixteen_bits() -> None:
    wrap = get_profile("arith16-wrap").classes["eltwise"]
    sat = wrap.with_knobs({"coeff_overflow": "saturate"})
    ratio = 0.099 / 0.049  # the motivating case's first operand
    assert operand_coefficient(ratio, sat).value == 32767
    wrapped = operand_coefficient(ratio, wrap)
    assert wrapped.overflowed and wrapped.value == round(ratio * 2**14) - 2**16 < 0
    assert not operand_coefficient(1.06, wrap).overflowed
