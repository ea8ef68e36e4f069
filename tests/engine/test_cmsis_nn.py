"""The engine's TFLite/CMSIS-NN arithmetic is bit-exact on CMSIS-NN's own test vectors.

The vectors were produced upstream by the TFLite reference kernels; we feed the raw
integers, multipliers and shifts to the engine's public numerics and kernel cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from cmsis_vectors import Case, cases, params

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.correlate import Correlator
from qprobe.backends.engine.kernels.window import Window
from qprobe.backends.engine.requant import fixed_requantizer


def _add(c: Case, single: bool) -> np.ndarray:
    return nx.elementwise_add(
        c.arr("input1"), c.arr("input2"),
        input1_offset=c.mac("INPUT1_OFFSET"), input1_mult=c.mac("INPUT1_MULT"), input1_shift=c.mac("INPUT1_SHIFT"),
        input2_offset=c.mac("INPUT2_OFFSET"), input2_mult=c.mac("INPUT2_MULT"), input2_shift=c.mac("INPUT2_SHIFT"),
        left_shift=c.mac("LEFT_SHIFT"), out_mult=c.mac("OUTPUT_MULT"), out_shift=c.mac("OUTPUT_SHIFT"),
        out_offset=c.mac("OUTPUT_OFFSET"), act_min=c.mac("OUT_ACTIVATION_MIN"),
        act_max=c.mac("OUT_ACTIVATION_MAX"), single_rounding=single,
    )


@pytest.mark.parametrize("case", [*params("add_s8"), *params("add_s16")])
def test_elementwise_add_double_rounding_is_bit_exact(case: Case) -> None:
    np.testing.assert_array_equal(_add(case, single=False), case.arr("output_ref"))


def test_add_s16_catches_single_rounding() -> None:
    case = cases("add_s16")[0]
    assert (_add(case, single=True) != case.arr("output_ref")).any(), "the oracle must tell the roundings apart"


@pytest.mark.parametrize("case", [*params("mul_s8"), *params("mul_s16")])
def test_elementwise_mul_is_bit_exact(case: Case) -> None:
    out = nx.elementwise_mul(
        case.arr("input1"), case.arr("input2"),
        input1_offset=case.mac("INPUT1_OFFSET"), input2_offset=case.mac("INPUT2_OFFSET"),
        out_mult=case.mac("OUTPUT_MULT"), out_shift=case.mac("OUTPUT_SHIFT"), out_offset=case.mac("OUTPUT_OFFSET"),
        act_min=case.mac("OUT_ACTIVATION_MIN"), act_max=case.mac("OUT_ACTIVATION_MAX"),
    )
    np.testing.assert_array_equal(out, case.arr("output_ref"))


def _conv_case(case: Case, depthwise: bool) -> tuple[np.ndarray, np.ndarray]:
    n, h, w, cin = (case.mac(k) for k in ("INPUT_BATCHES", "INPUT_H", "INPUT_W", "IN_CH"))
    cout, fy, fx = case.mac("OUT_CH"), case.mac("FILTER_Y"), case.mac("FILTER_X")
    oh, ow = case.mac("OUTPUT_H"), case.mac("OUTPUT_W")
    x = case.arr("input").astype(np.int64).reshape(n, h, w, cin).transpose(0, 3, 1, 2) + case.mac("INPUT_OFFSET")
    if depthwise:
        wts = case.arr("weights").reshape(fy, fx, cout).transpose(2, 0, 1)[:, None]
        group = cin
    else:
        fch = case.mac("FILTER_CH", cin)
        wts = case.arr("weights").reshape(cout, fy, fx, fch).transpose(0, 3, 1, 2)
        group = cin // fch
    sy, sx, dy, dx = (case.mac(k, 1) for k in ("STRIDE_Y", "STRIDE_X", "DILATION_Y", "DILATION_X"))
    py, px = case.mac("PAD_Y"), case.mac("PAD_X")
    end_y = max((oh - 1) * sy + (fy - 1) * dy + 1 - h - py, 0)
    end_x = max((ow - 1) * sx + (fx - 1) * dx + 1 - w - px, 0)
    win = Window((fy, fx), (sy, sx), (dy, dx), (py, px, end_y, end_x))
    corr = Correlator(wts.astype(np.int64), group, win, np.float64)
    acc = np.rint(corr(x)).astype(np.int64)  # channels last, as CMSIS-NN lays outputs out
    assert acc.shape == (n, oh, ow, cout)
    bias = np.zeros(cout, np.int64) if not case.has("biases") else case.arr("biases").astype(np.int64)
    return acc + bias, case.arr("output_ref").reshape(n, oh, ow, cout)


@pytest.mark.parametrize("case", [*params("conv_s8"), *params("grouped_conv_s8"), *params("depthwise_conv_s8"),
                                  *params("conv_s16"), *params("depthwise_conv_s16")])
def test_conv_accumulation_and_requantization_are_bit_exact(case: Case) -> None:
    acc, ref = _conv_case(case, depthwise="depthwise" in str(case.data["kind"]))
    int64_bias = case.has("biases") and case.arr("biases").dtype == np.int64
    no_bias_s16 = str(case.data["kind"]).endswith("s16") and not case.has("biases")
    rounding = "tflite_double" if not (int64_bias or (no_bias_s16 and "xint32" not in case.name)) else "s64"
    requant = fixed_requantizer(case.arr("output_mult"), case.arr("output_shift"), case.mac("OUTPUT_OFFSET"),
                                case.mac("OUT_ACTIVATION_MIN"), case.mac("OUT_ACTIVATION_MAX"), rounding)
    np.testing.assert_array_equal(requant(acc, channel_axis=3), ref)


def test_requantize_s64_primitive_matches_the_formula() -> None:
    x = np.array([2**40 + 12345, -(2**35) - 7, 0, 1], dtype=np.int64)
    m, s = 1_500_000_000, -5
    m16 = (m + 2**15) >> 16
    expect = [(int(v) * m16 + 2 ** (14 - s)) >> (15 - s) for v in x]
    np.testing.assert_array_equal(nx.multiply_by_quantized_multiplier_s64(x, m, s), expect)
