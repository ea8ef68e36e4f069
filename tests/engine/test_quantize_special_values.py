"""QuantizeLinear on the values where MLAS's clamp order shows: NaN, infinities, ties, the edges.

onnxruntime (the oracle) clamps ``x / s`` with x86 MAXPS then MINPS before rounding, so a NaN
becomes the low end of the range; the engine's ``onnxruntime`` profile must give the same codes
for every element, per tensor and per channel, signed and unsigned.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from ort_helpers import run_engine, run_ort

SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.5, -128.5,
           -129.0, 300.0, -300.0, 1e30, -1e30, 3.4e38, 1e-45]


def _model(zero: np.ndarray, scale: np.ndarray, axis: int) -> onnx.ModelProto:
    elem = TensorProto.INT8 if zero.dtype == np.int8 else TensorProto.UINT8
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=axis)
    graph = helper.make_graph(
        [node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, len(SPECIAL)])],
        [helper.make_tensor_value_info("y", elem, None)],
        [helper.make_tensor("s", TensorProto.FLOAT, list(scale.shape), scale.tolist()),
         helper.make_tensor("z", elem, list(zero.shape), zero.tolist())])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 3.4e38 / 0.25 is inf, on both sides
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_special_values_match_onnxruntime(dtype: type, per_channel: bool) -> None:
    rng = np.random.default_rng(3)
    if per_channel:
        scale = np.array([1.0, 0.25, 3.0], np.float32)
        zero = np.array([0, 7, -3] if dtype == np.int8 else [128, 0, 250], dtype)
    else:
        scale, zero = np.array(0.5, np.float32), np.array(-5 if dtype == np.int8 else 12, dtype)
    x = np.tile(np.array(SPECIAL, np.float32), (4, 3, 1))
    x[2:] *= rng.uniform(0.1, 10.0, size=x[2:].shape).astype(np.float32)  # more values between the edges
    model = _model(zero, scale, axis=1)
    got = run_engine(model, {"x": x})["y"]
    want = run_ort(model, {"x": x}, fused=False)["y"]
    assert got.dtype == want.dtype
    assert np.array_equal(got, want), np.argwhere(got != want)[:5]
