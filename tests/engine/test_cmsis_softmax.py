"""TFLite's fixed-point softmax (``numerics_softmax``) is bit-exact on CMSIS-NN's softmax vectors.

The vectors' outputs come from the TFLite reference kernels; their multipliers come from
CMSIS-NN's generator. We also check that our parameter derivation (``softmax_params_*``)
gives the vectors' multipliers, shifts and ``diff_min`` for the scales they imply, and
that our generated int16 tables equal the ones shipped with the vectors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cmsis_vectors import Case, params

from qprobe.backends.engine import numerics_softmax as nsm


def _rows(case: Case, x: np.ndarray) -> np.ndarray:
    return x.reshape(case.mac("NUM_ROWS"), case.mac("ROW_SIZE"))


def _s8_args(case: Case) -> tuple[int, int, int]:
    return case.mac("INPUT_MULT"), case.mac("INPUT_LEFT_SHIFT"), case.mac("DIFF_MIN")


@pytest.mark.parametrize("case", list(params("softmax_s8")))
def test_softmax_s8_is_bit_exact(case: Case) -> None:
    got = nsm.softmax_s8(_rows(case, case.arr("input")), *_s8_args(case))
    np.testing.assert_array_equal(got.reshape(-1), case.arr("output_ref"))


@pytest.mark.parametrize("case", list(params("softmax_s8_s16")))
def test_softmax_s8_s16_is_bit_exact(case: Case) -> None:
    got = nsm.softmax_s8_s16(_rows(case, case.arr("input")), *_s8_args(case))
    np.testing.assert_array_equal(got.reshape(-1), case.arr("output_ref"))


@pytest.mark.parametrize("case", list(params("softmax_s16")))
def test_softmax_s16_is_bit_exact(case: Case) -> None:
    got = nsm.softmax_s16(_rows(case, case.arr("input")), case.mac("INPUT_MULT"), case.mac("INPUT_LEFT_SHIFT"),
                          case.arr("exp_lut"), case.arr("one_by_one_lut"))
    np.testing.assert_array_equal(got.reshape(-1), case.arr("output_ref"))


@pytest.mark.parametrize("case", list(params("softmax_s16")))
def test_generated_tables_are_tflm_tables(case: Case) -> None:
    exp_lut, recip_lut = nsm.softmax_s16_luts()
    np.testing.assert_array_equal(exp_lut, case.arr("exp_lut"))
    np.testing.assert_array_equal(recip_lut, case.arr("one_by_one_lut"))
    # TFLite's double-precision gen_lut differs: the float32 evaluation is what the data pins down
    _exp64, recip64 = nsm.softmax_s16_luts(float32=False)
    assert (recip64 != case.arr("one_by_one_lut")).sum() == 2


def test_parameter_derivation_gives_the_vectors_parameters() -> None:
    # softmax_s8: input scale float32(1/255), beta 1 -> the header's multiplier, shift and diff_min
    assert nsm.softmax_params_s8(1.0, float(np.float32(1 / 255))) == (1077952640, 19, -3968)
    # softmax_s8_s16: CMSIS-NN's generator quantized the Python double 0.003922, not its float32
    assert nsm.softmax_params_s8(1.0, 0.003922) == (1078071151, 19, -3968)
    assert nsm.softmax_params_s8(1.0, float(np.float32(0.003922)))[0] == 1078071168
    # softmax_s16: input scale float32(1/32767), [-65535, 0] -> [-10, 0]
    assert nsm.softmax_params_s16(1.0, float(np.float32(1 / 32767))) == (1718013132, -2)


@pytest.mark.parametrize("case", list(params("softmax_s8_s16")))
def test_float32_scale_multiplier_gives_the_same_outputs(case: Case) -> None:
    """TFLite itself would use the float32 scale's multiplier (17 units larger here); the outputs agree."""
    mult, shift, diff_min = nsm.softmax_params_s8(1.0, float(np.float32(0.003922)))
    got = nsm.softmax_s8_s16(_rows(case, case.arr("input")), mult, shift, diff_min)
    np.testing.assert_array_equal(got.reshape(-1), case.arr("output_ref"))


def test_fixed_point_constants_are_gemmlowps() -> None:
    assert [round(math.exp(-(2.0**e)) * 2**31) for e in range(-2, 5)] == [
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242]


def test_exp_and_reciprocal_are_accurate() -> None:
    a = -np.arange(0, 32 * 2**26, 2**20 + 12345, dtype=np.int64)  # Q5 in (-32, 0]
    err = nsm.exp_on_negative_values(a) / 2**31 - np.exp(a / 2**26)
    assert np.abs(err).max() < 2.5e-7  # the Taylor remainder (1/8)**5 / 120
    x = np.arange(0, 2**31, 2**20 + 777, dtype=np.int64)  # Q0 in [0, 1)
    err = nsm.one_over_one_plus_x_for_x_in_0_1(x) / 2**31 - 1 / (1 + x / 2**31)
    assert np.abs(err).max() < 2.0**-28  # Newton-Raphson in Q2 (resolution 2**-29)


def test_rows_below_diff_min_give_the_minimum() -> None:
    mult, shift, diff_min = nsm.softmax_params_s8(1.0, 0.5)  # diff_min is far inside the int8 range
    assert -255 < diff_min < 0
    y = nsm.softmax_s8(np.array([[127, -128, 120]]), mult, shift, diff_min)
    assert y[0, 1] == -128  # exp taken as 0, not exp(-127.5)
    assert abs(int(y[0, 0]) - (256 / (1 + math.exp(-3.5)) - 128)) <= 1
