"""The ``tflite`` profiles run an int8 QDQ Softmax as TFLite's reference fixed-point softmax.

Oracle: ``numerics_softmax`` (bit-exact on CMSIS-NN's vectors, test_cmsis_softmax.py)
applied to the model's codes with parameters derived from its scales. Quantizations
TFLite has no fixed-point kernel for keep the float path, with a note in the session info.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_engine

from qprobe.backends.engine import numerics_softmax as nsm
from qprobe.backends.engine.backend import EngineBackend
from qprobe.backends.engine.builtin_profiles import get_profile

NP_TO_ONNX = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16}


def _softmax(sx: float, zx: int, xdt: str, sy: float, zy: int, ydt: str, axis: int = -1) -> onnx.ModelProto:
    c = numpy_helper.from_array
    inits = [c(np.float32(sx), "sx"), c(np.array(zx, xdt), "zx"), c(np.float32(sy), "sy"), c(np.array(zy, ydt), "zy")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xd"]),
             helper.make_node("Softmax", ["xd"], ["y"], name="softmax", axis=axis),
             helper.make_node("QuantizeLinear", ["y", "sy", "zy"], ["q"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", NP_TO_ONNX[xdt], ["N", 3, 17])],
                              [helper.make_tensor_value_info("q", NP_TO_ONNX[ydt], ["N", 3, 17])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _codes(dtype: str, seed: int = 0, n: int = 64) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max + 1, (n, 3, 17)).astype(dtype)


def _info(model: onnx.ModelProto, profile: str) -> dict[str, str]:
    return EngineBackend.from_spec(profile, {}).open(ir.from_proto(model)).info


@pytest.mark.parametrize("profile", ["tflite", "tflite-single-rounding"])
@pytest.mark.parametrize("sx", [0.02, 1 / 255, 0.1, 0.0625, 0.37])
def test_int8_softmax_is_tflites_fixed_point_kernel(profile: str, sx: float) -> None:
    x = _codes("int8")
    got = run_engine(_softmax(sx, 5, "int8", 1 / 256, -128, "int8"), {"x": x}, profile)["q"]
    mult, shift, diff_min = nsm.softmax_params_s8(1.0, float(np.float32(sx)))
    np.testing.assert_array_equal(got, nsm.softmax_s8(x, mult, shift, diff_min))
    assert got.dtype == np.int8


def test_derivation_reproduces_the_cmsis_s8_case() -> None:
    # softmax_s8/softmax.npz: INPUT_MULT 1077952640, INPUT_LEFT_SHIFT 19, DIFF_MIN -3968 at scale 1/255
    assert nsm.softmax_params_s8(1.0, float(np.float32(1 / 255))) == (1077952640, 19, -3968)


def test_other_axes_and_widths() -> None:
    x8, x16 = _codes("int8", 1), _codes("int16", 2)
    got = run_engine(_softmax(0.05, 0, "int8", 1 / 256, -128, "int8", axis=1), {"x": x8}, "tflite")["q"]
    want = np.moveaxis(nsm.softmax_s8(np.moveaxis(x8, 1, -1), *nsm.softmax_params_s8(1.0, float(np.float32(0.05)))),
                       -1, 1)
    np.testing.assert_array_equal(got, want)
    got = run_engine(_softmax(0.05, 0, "int8", 1 / 65536, -32768, "int16"), {"x": x8}, "tflite")["q"]
    np.testing.assert_array_equal(got, nsm.softmax_s8_s16(x8, *nsm.softmax_params_s8(1.0, float(np.float32(0.05)))))
    u8 = _codes("uint8", 3)
    got = run_engine(_softmax(0.05, 128, "uint8", 1 / 256, 0, "uint8"), {"x": u8}, "tflite")["q"]
    np.testing.assert_array_equal(got, nsm.softmax_u8(u8, *nsm.softmax_params_s8(1.0, float(np.float32(0.05)))))
    sx16 = float(np.float32(1 / 3000))
    tables = nsm.softmax_s16_luts()
    for profile, single in (("tflite", False), ("tflite-single-rounding", True)):
        got = run_engine(_softmax(sx16, 0, "int16", 1 / 32768, 0, "int16"), {"x": x16}, profile)["q"]
        want = nsm.softmax_s16(x16, *nsm.softmax_params_s16(1.0, sx16), *tables, single_rounding=single)
        np.testing.assert_array_equal(got, want)


def test_other_output_quantization_falls_back_to_float_with_a_note() -> None:
    model = _softmax(0.05, 0, "int8", 1 / 255, -128, "int8")
    x = _codes("int8", 4)
    got = run_engine(model, {"x": x}, "tflite")["q"]
    np.testing.assert_array_equal(got, run_engine(model, {"x": x}, "tflite", {"activation.softmax": "float"})["q"])
    note = _info(model, "tflite")["float_nodes"]
    assert "softmax" in note and "1/256" not in note and "0.00390625" in note and "-128" in note
    assert "float_nodes" not in _info(_softmax(0.05, 0, "int8", 1 / 256, -128, "int8"), "tflite")


def test_the_fixed_point_kernel_is_not_the_float_one() -> None:
    """They differ by one LSB at near-ties only: about 1 output in 50 000 on random codes."""
    model, x = _softmax(0.1, 0, "int8", 1 / 256, -128, "int8"), _codes("int8", 5, n=8000)
    fixed = run_engine(model, {"x": x}, "tflite")["q"]
    flt = run_engine(model, {"x": x}, "tflite", {"activation.softmax": "float"})["q"]
    diff = np.abs(fixed.astype(int) - flt.astype(int))
    assert diff.max() == 1 and 0 < (diff > 0).sum() < 100


@pytest.mark.parametrize("name", ["onnxruntime", "exact", "arith16-wrap"])
def test_other_profiles_keep_the_float_softmax(name: str) -> None:
    prof = get_profile(name)
    assert prof.numerics_for("activation", "Softmax").softmax == "float"
