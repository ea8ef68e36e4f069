"""Float-island elementwise ops and logic against onnxruntime's float path (no optimizations).

Exact IEEE ops and MLAS's Exp/Erf must be bit-identical; Pow with a general exponent and Log
within a stated number of float32 ulp (onnxruntime uses Eigen/libm for them). Logic ops and
Where are exact on every dtype, with ONNX broadcasting.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_engine, run_ort

F32 = np.float32


def _model(op: str, inputs: dict[str, np.ndarray], out_type: int = TensorProto.FLOAT, **attrs: object
           ) -> onnx.ModelProto:
    node = helper.make_node(op, list(inputs), ["y"], name=f"{op.lower()}_node", **attrs)
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
           for k, v in inputs.items()]
    graph = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", out_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _both(op: str, inputs: dict[str, np.ndarray], out_type: int = TensorProto.FLOAT, **attrs: object
          ) -> tuple[np.ndarray, np.ndarray]:
    model = _model(op, inputs, out_type, **attrs)
    return run_engine(model, inputs)["y"], run_ort(model, inputs, fused=False)["y"]


def _ulp(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))))


X = np.concatenate([np.random.default_rng(0).normal(0, 4, 200_000),
                    [0.0, -0.0, 1e-30, -1e-40, 88.7, -103.0, 200.0, -200.0, 1e30, -1e30, np.inf, -np.inf]]).astype(F32)


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sqrt", "Reciprocal", "Floor", "Ceil", "Exp", "Erf"])
def test_exact_unary_ops_are_bit_identical(op: str) -> None:
    x = np.abs(X) if op == "Sqrt" else X
    got, ref = _both(op, {"x": x})
    np.testing.assert_array_equal(got.view(np.int32), ref.view(np.int32))


def test_log_is_within_eight_ulp() -> None:
    x = np.abs(X[:200_000]) + F32(1e-3)
    got, ref = _both("Log", {"x": x})
    assert _ulp(got, ref) <= 8


@pytest.mark.parametrize("exponent", [2.0, 3.0])
def test_pow_by_two_and_three_is_bit_identical(exponent: float) -> None:
    got, ref = _both("Pow", {"x": X[:200_000], "e": np.array(exponent, F32)})
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("exponent", [0.5, 1.7, -1.0])
def test_pow_by_other_exponents_is_within_one_ulp(exponent: float) -> None:
    got, ref = _both("Pow", {"x": np.abs(X[:200_000]) + F32(1e-3), "e": np.array(exponent, F32)})
    assert _ulp(got, ref) <= 1


def test_integer_neg_and_abs_keep_their_dtype() -> None:
    x = np.array([-5, 0, 7, -2**40], np.int64)
    for op in ("Neg", "Abs"):
        got, ref = _both(op, {"x": x}, TensorProto.INT64)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_comparisons_broadcast_like_onnxruntime(op: str, dtype: type) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-3, 4, (5, 1, 4)).astype(dtype)
    b = rng.integers(-3, 4, (3, 1)).astype(dtype)
    got, ref = _both(op, {"a": a, "b": b}, TensorProto.BOOL)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_boolean_logic(op: str) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 2, (4, 6)).astype(bool), rng.integers(0, 2, (6,)).astype(bool)
    got, ref = _both(op, {"a": a, "b": b}, TensorProto.BOOL)
    np.testing.assert_array_equal(got, ref)
    got, ref = _both("Not", {"a": a}, TensorProto.BOOL)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64])
def test_where_selects_with_broadcasting(dtype: type) -> None:
    rng = np.random.default_rng(3)
    cond = rng.integers(0, 2, (2, 3, 1)).astype(bool)
    x, y = rng.integers(-9, 9, (3, 4)).astype(dtype), rng.integers(-9, 9, (1, 4)).astype(dtype)
    got, ref = _both("Where", {"c": cond, "a": x, "b": y}, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("same_scale", [True, False])
def test_qdq_where_gives_the_codes_of_onnxruntimes_qlinear_where(same_scale: bool) -> None:
    q = {"sa": (0.05, F32), "za": (3, np.int8), "sb": (0.05 if same_scale else 0.08, F32),
         "zb": (3 if same_scale else -7, np.int8), "so": (0.05 if same_scale else 0.06, F32),
         "zo": (3 if same_scale else 1, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["ad"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bd"]),
             helper.make_node("Where", ["c", "ad", "bd"], ["w"], name="where"),
             helper.make_node("QuantizeLinear", ["w", "so", "zo"], ["y"])]
    inputs = [helper.make_tensor_value_info("c", TensorProto.BOOL, ["N", 16]),
              *(helper.make_tensor_value_info(k, TensorProto.INT8, ["N", 16]) for k in "ab")]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.INT8, None)],
                              [numpy_helper.from_array(np.array(v, t), k) for k, (v, t) in q.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rng = np.random.default_rng(4)
    feeds = {"c": rng.integers(0, 2, (64, 16)).astype(bool), "a": rng.integers(-128, 128, (64, 16)).astype(np.int8),
             "b": rng.integers(-128, 128, (64, 16)).astype(np.int8)}
    np.testing.assert_array_equal(run_engine(model, feeds)["y"], run_ort(model, feeds, fused=True)["y"])
