"""BatchNormalization (bit for bit), InstanceNormalization and LayerNormalization (within
``TOL`` of the output's largest magnitude: about one float32 ulp), and Einsum (within
float32 rounding of the exact sum) against onnxruntime's float path.

Shapes include rows that are not a multiple of the 4-lane packet (so that the Eigen sums'
alignment matters) and LayerNormalization over more than one axis and without bias.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_engine, run_ort, session

F32 = np.float32
TOL = 4 * 2.0**-23


def _model(op: str, x_shape: tuple[int, ...], consts: dict[str, np.ndarray], **attrs: object) -> onnx.ModelProto:
    node = helper.make_node(op, ["x", *consts], ["y"], name="op", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape[1:]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _exact(model: onnx.ModelProto, x: np.ndarray) -> None:
    got, ref = run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"]
    np.testing.assert_array_equal(got.view(np.int32), ref.view(np.int32))


def _close(model: onnx.ModelProto, x: np.ndarray) -> None:
    got, ref = run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"]
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert float(np.max(np.abs(got.astype(np.float64) - ref))) <= TOL * float(np.max(np.abs(ref)))


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (3, 8, 4, 4), (2, 5, 9)])
def test_batch_norm(shape: tuple[int, ...]) -> None:
    c = shape[1]
    consts = {"s": RNG.normal(1, 0.2, c).astype(F32), "b": RNG.normal(0, 0.1, c).astype(F32),
              "m": RNG.normal(0, 0.3, c).astype(F32), "v": RNG.uniform(0.2, 2, c).astype(F32)}
    _exact(_model("BatchNormalization", shape, consts, epsilon=1e-3), RNG.normal(0, 2, shape).astype(F32))


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (3, 8, 4, 4), (2, 5, 9), (3, 2, 37)])
def test_instance_norm(shape: tuple[int, ...]) -> None:
    c = shape[1]
    consts = {"s": RNG.normal(1, 0.2, c).astype(F32), "b": RNG.normal(0, 0.1, c).astype(F32)}
    _close(_model("InstanceNormalization", shape, consts, epsilon=1e-5), RNG.normal(0.5, 2, shape).astype(F32))


@pytest.mark.parametrize(("shape", "axis", "bias"), [((6, 10, 16), -1, True), ((5, 7, 13), -1, False),
                                                     ((4, 3, 5, 6), -2, True), ((8, 33), 1, True)])
def test_layer_norm(shape: tuple[int, ...], axis: int, bias: bool) -> None:
    norm = shape[axis % len(shape):]
    consts = {"s": RNG.normal(1, 0.2, norm).astype(F32)}
    if bias:
        consts["b"] = RNG.normal(0, 0.1, norm).astype(F32)
    _close(_model("LayerNormalization", shape, consts, axis=axis, epsilon=1e-5), RNG.normal(0.3, 2, shape).astype(F32))


EQUATIONS = [("bij,bkj->bik", [(5, 4, 8), (5, 6, 8)]), ("bik,kl->bil", [(5, 4, 6), (6, 3)]),
             ("bhqd,bhkd->bhqk", [(2, 2, 5, 8), (2, 2, 5, 8)]), ("bij->bji", [(3, 4, 5)]), ("bii->bi", [(3, 4, 4)]),
             ("bi,bi->b", [(6, 9), (6, 9)])]


@pytest.mark.parametrize(("equation", "shapes"), EQUATIONS)
def test_einsum_is_within_float32_rounding(equation: str, shapes: list[tuple[int, ...]]) -> None:
    names = [f"x{i}" for i in range(len(shapes))]
    arrays = {n: RNG.normal(0, 1, s).astype(F32) for n, s in zip(names, shapes, strict=True)}
    node = helper.make_node("Einsum", names, ["y"], name="einsum", equation=equation)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
                                            for n, a in arrays.items()],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    got, ref = run_engine(model, arrays)["y"], run_ort(model, arrays, fused=False)["y"]
    exact = np.einsum(equation, *[a.astype(np.float64) for a in arrays.values()])
    assert got.shape == ref.shape
    bound = 4 * 2.0**-23 * float(np.max(np.abs(exact)))  # onnxruntime's float32 sums are this close too
    assert float(np.max(np.abs(got - exact))) <= bound
    assert float(np.max(np.abs(ref - exact))) <= 8 * bound


def test_onnxruntime_fuses_no_qdq_einsum(tmp_path: Path) -> None:
    """A QDQ Einsum stays DequantizeLinear -> Einsum (float) -> QuantizeLinear in ort-fused; the engine matches."""
    q = {"s": np.array(0.04, F32), "z": np.array(-3, np.int8), "so": np.array(0.2, F32), "zo": np.array(5, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["a", "s", "z"], ["ad"]),
             helper.make_node("DequantizeLinear", ["b", "s", "z"], ["bd"]),
             helper.make_node("Einsum", ["ad", "bd"], ["e"], name="einsum", equation="bij,bkj->bik"),
             helper.make_node("QuantizeLinear", ["e", "so", "zo"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k, TensorProto.INT8, ["N", 4, 8]) for k
                                           in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, None)],
                              [numpy_helper.from_array(v, k) for k, v in q.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session(model, fused=True, save=str(tmp_path / "opt.onnx"))
    assert "Einsum" in {n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node}
    rng = np.random.default_rng(8)
    feeds = {k: rng.integers(-128, 128, (32, 4, 8)).astype(np.int8) for k in "ab"}
    got, ref = run_engine(model, feeds)["y"], run_ort(model, feeds, fused=True)["y"]
    assert np.mean(got != ref) <= 0.01 and int(np.max(np.abs(got.astype(int) - ref))) <= 1
