"""The ``tflite`` profiles wire the TFLite primitives (checked on CMSIS-NN vectors) into QDQ graphs.

Oracles: the CMSIS-NN add case's parameters (derived from scales by ``add_params``), and
the public primitives themselves, which test_cmsis_nn.py holds to the vectors.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_engine

from qprobe.backends.engine import numerics as nx


def test_add_params_reproduce_the_cmsis_add_case() -> None:
    # add_s8/add.npz: both inputs at scale s, output at 2s, LEFT_SHIFT 20
    assert nx.add_params(0.5, 0.5, 1.0, 20) == (2**30, 0, 2**30, 0, 2**30, -19)


def _binary(op: str, sa: float, za: int, sb: float, zb: int, sc: float, zc: int) -> onnx.ModelProto:
    c = numpy_helper.from_array
    inits = [c(np.float32(sa), "sa"), c(np.int8(za), "za"), c(np.float32(sb), "sb"), c(np.int8(zb), "zb"),
             c(np.float32(sc), "sc"), c(np.int8(zc), "zc")]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["ad"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bd"]),
             helper.make_node(op, ["ad", "bd"], ["y"], name="op"),
             helper.make_node("QuantizeLinear", ["y", "sc", "zc"], ["q"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.INT8, ["N"]) for n in "ab"],
                              [helper.make_tensor_value_info("q", TensorProto.INT8, ["N"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


PAIRS = np.meshgrid(np.arange(-128, 128, dtype=np.int8), np.arange(-128, 128, dtype=np.int8), indexing="ij")
SCALES = [(0.052, 3, 0.099, -7, 0.049, 5), (0.02, 0, 0.02, 0, 0.04, -1), (0.1, -20, 0.013, 11, 0.07, 9)]


@pytest.mark.parametrize("profile", ["tflite", "tflite-single-rounding"])
@pytest.mark.parametrize("scales", SCALES)
def test_add_is_the_tflite_add_kernel(profile: str, scales: tuple[float, ...]) -> None:
    sa, za, sb, zb, sc, zc = scales
    a, b = (p.reshape(-1) for p in PAIRS)
    got = run_engine(_binary("Add", *scales), {"a": a, "b": b}, profile)["q"]
    m1, s1, m2, s2, mo, so = nx.add_params(np.float32(sa), np.float32(sb), np.float32(sc), 20)
    want = nx.elementwise_add(a, b, input1_offset=-za, input1_mult=m1, input1_shift=s1, input2_offset=-zb,
                              input2_mult=m2, input2_shift=s2, left_shift=20, out_mult=mo, out_shift=so,
                              out_offset=zc, act_min=-128, act_max=127, single_rounding=profile != "tflite")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("scales", SCALES)
def test_mul_is_the_tflite_mul_kernel(scales: tuple[float, ...]) -> None:
    sa, za, sb, zb, sc, zc = scales
    a, b = (p.reshape(-1) for p in PAIRS)
    got = run_engine(_binary("Mul", *scales), {"a": a, "b": b}, "tflite")["q"]
    m, s = nx.quantize_multiplier(float(np.float32(sa)) * float(np.float32(sb)) / float(np.float32(sc)))
    want = nx.elementwise_mul(a, b, input1_offset=-za, input2_offset=-zb, out_mult=m, out_shift=s, out_offset=zc,
                              act_min=-128, act_max=127)
    np.testing.assert_array_equal(got, want)


def test_ethos_u_structure_equals_tflite_on_add() -> None:
    """Rescaling only the smaller-scale operand is TFLite's ADD with its exact 0.5 factor folded away."""
    a, b = (p.reshape(-1) for p in PAIRS)
    for scales in SCALES:
        model = _binary("Add", *scales)
        tfl = run_engine(model, {"a": a, "b": b}, "tflite")["q"]
        ethos = run_engine(model, {"a": a, "b": b}, "tflite", {"eltwise.structure": "ethos_u"})["q"]
        np.testing.assert_array_equal(ethos, tfl)
