"""ReduceSum/ReduceMean reproduce onnxruntime's float32 sums bit for bit, on every loop shape.

Oracle: onnxruntime, no optimizations. Shapes cover each loop onnxruntime picks (trailing
axes with aligned and unaligned rows, one middle block, leading axes, scattered axes, all
axes) and the attribute/input variants: negative axes, keepdims=0, noop_with_empty_axes,
axes as an attribute (ReduceMean before opset 18) and as an input; a QDQ ReduceMean runs as
DequantizeLinear -> ReduceMean -> QuantizeLinear in both runtimes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_engine, run_ort

F32 = np.float32

CASES = [
    ((16, 8, 4, 4), [2, 3]),  # global pooling: aligned rows
    ((6, 5, 37), [-1]),  # unaligned rows
    ((4, 3, 3), [2]),  # rows shorter than a packet
    ((7, 100), [1]),  # two-packet loop and tail
    ((5, 13, 6), [1]),  # one middle block (ones-vector SGEMM)
    ((3, 11, 9), [-2]),
    ((9, 20), [0]),  # leading axis
    ((4, 5, 6, 7), [1, 3]),  # scattered axes
    ((3, 4, 5), [0, 1, 2]),
    ((2, 1, 5, 1), [1, 2]),  # size-1 dimensions (merged, not dropped)
    ((3, 7, 1), [1]),
    ((1, 9, 4), [1]),  # one outer row: the generic loop
    ((3, 4, 5), [0, 2]),  # outer and trailing axes
    ((4, 5, 6, 7), [0, 3]),
]


def _model(op: str, x: np.ndarray, axes: list[int] | None, opset: int, as_input: bool, **attrs: object
           ) -> onnx.ModelProto:
    inputs, inits = ["x"], []
    if axes is not None and as_input:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        inputs.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    node = helper.make_node(op, inputs, ["y"], name="reduce", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _agree(model: onnx.ModelProto, x: np.ndarray) -> None:
    got, ref = run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"]
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got.view(np.int32), ref.view(np.int32))


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize(("shape", "axes"), CASES)
def test_reduce_sum_matches_bit_for_bit(shape: tuple[int, ...], axes: list[int], keepdims: int) -> None:
    x = np.random.default_rng(len(shape) + sum(shape)).normal(0, 1, shape).astype(F32)
    _agree(_model("ReduceSum", x, axes, 13, True, keepdims=keepdims), x)


@pytest.mark.parametrize(("shape", "axes"), CASES)
def test_reduce_mean_matches_bit_for_bit(shape: tuple[int, ...], axes: list[int]) -> None:
    x = np.random.default_rng(sum(shape)).normal(0, 1, shape).astype(F32)
    _agree(_model("ReduceMean", x, axes, 13, False, keepdims=0), x)
    _agree(_model("ReduceMean", x, axes, 18, True, keepdims=1), x)


def test_empty_axes_reduce_everything_or_nothing() -> None:
    x = np.random.default_rng(5).normal(0, 1, (4, 6, 5)).astype(F32)
    _agree(_model("ReduceSum", x, None, 13, True), x)
    _agree(_model("ReduceSum", x, None, 13, True, noop_with_empty_axes=1), x)
    _agree(_model("ReduceMean", x, None, 18, True, keepdims=0), x)


def test_the_oracle_tells_summation_orders_apart() -> None:
    x = np.random.default_rng(6).normal(0, 1, (64, 5, 37)).astype(F32)
    ref = run_ort(_model("ReduceSum", x, [2], 13, True, keepdims=0), {"x": x}, fused=False)["y"]
    assert np.mean(x.sum(axis=2, dtype=F32) != ref) > 0.05
    assert np.mean(x.astype(np.float64).sum(axis=2).astype(F32) != ref) > 0.05


def test_integer_reduce_sum_of_shapes_is_exact() -> None:
    x = np.array([[3, 4, 5], [6, 7, 8]], np.int64)
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
                              [numpy_helper.from_array(np.array([1], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    got = run_engine(model, {"x": x})["y"]
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, run_ort(model, {"x": x}, fused=False)["y"])


def _qdq_mean() -> onnx.ModelProto:
    inits = [numpy_helper.from_array(v, k) for k, v in {
        "s": np.array(0.03, F32), "z": np.array(-5, np.int8), "so": np.array(0.011, F32),
        "zo": np.array(2, np.int8)}.items()]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["d"]),
             helper.make_node("ReduceMean", ["d"], ["m"], name="mean", axes=[2, 3], keepdims=1),
             helper.make_node("QuantizeLinear", ["m", "so", "zo"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 8, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_qdq_reduce_mean_matches_ort_fused() -> None:
    """onnxruntime fuses no QDQ ReduceMean: both run it in float and quantize the mean."""
    x = np.random.default_rng(7).integers(-128, 128, (32, 8, 5, 5)).astype(np.int8)
    model = _qdq_mean()
    got = run_engine(model, {"x": x})["y"]
    np.testing.assert_array_equal(got, run_ort(model, {"x": x}, fused=True)["y"])
    np.testing.assert_array_equal(got, run_ort(model, {"x": x}, fused=False)["y"])
