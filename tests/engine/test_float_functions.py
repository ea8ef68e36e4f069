"""float32 functions of ``kernels/mlas.py`` reproduce onnxruntime's CPU kernels bit for bit.

Oracle: onnxruntime (no optimizations) on 10**6 random float32 inputs per function.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from ort_helpers import run_ort

from qprobe.backends.engine.kernels import mlas


def _single_op(op: str, **attrs: object) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op", sorted(mlas.FLOAT32))
def test_function_matches_onnxruntime(op: str) -> None:
    x = (np.random.default_rng(0).standard_normal(10**6) * 6).astype(np.float32)
    x[:5] = [0.0, -0.0, 30.0, -30.0, 3.0]
    ref = run_ort(_single_op(op), {"x": x}, fused=False)["y"]
    np.testing.assert_array_equal(mlas.FLOAT32[op](x), ref)


def test_numpy_sigmoid_would_not_match() -> None:
    """The oracle tells implementations apart: the textbook formula differs on many inputs."""
    x = (np.random.default_rng(1).standard_normal(10**5) * 6).astype(np.float32)
    ref = run_ort(_single_op("Sigmoid"), {"x": x}, fused=False)["y"]
    assert np.mean((1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32) != ref) > 0.01
