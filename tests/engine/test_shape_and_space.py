"""Shape arithmetic (folded at compile time where static, evaluated per run where it
involves the batch), Expand, ConstantOfShape, Range, and DepthToSpace/SpaceToDepth.

Oracles: onnxruntime, and for DepthToSpace/SpaceToDepth also the ONNX reference evaluator
(``onnx.reference``), in both DepthToSpace modes, on floats and on codes in QDQ groups.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from ort_helpers import run_engine, run_ort

from qprobe.backends.engine import EngineBackend, get_profile

F32 = np.float32


def _graph(nodes: list[onnx.NodeProto], x_shape: list[int | str], consts: dict[str, np.ndarray],
           out_type: int = TensorProto.FLOAT, x_type: int = TensorProto.FLOAT, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type, x_shape)],
                              [helper.make_tensor_value_info("y", out_type, None)],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _flatten_by_shape(batch: int | str) -> onnx.ModelProto:
    """x.view(x.size(0), -1) as PyTorch exports it, then x * Expand(c, Shape(x'))."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "i0"], ["b"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"], name="unsqueeze"),
             helper.make_node("Concat", ["b1", "m1"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
             helper.make_node("Shape", ["flat"], ["s2"], name="shape2"),
             helper.make_node("Expand", ["c", "s2"], ["ce"], name="expand"),
             helper.make_node("Mul", ["flat", "ce"], ["y"], name="mul")]
    consts = {"i0": np.array(0, np.int64), "ax0": np.array([0], np.int64), "m1": np.array([-1], np.int64),
              "c": np.arange(1, 25, dtype=F32).reshape(1, 24) / 7}
    return _graph(nodes, [batch, 2, 3, 4], consts)


def _steps(model: onnx.ModelProto) -> list[str]:
    session = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(model))
    return [s.node for s in session.program.steps]


def test_dynamic_batch_shape_arithmetic_runs_per_call() -> None:
    model = _flatten_by_shape("N")
    for n in (1, 5):
        x = np.random.default_rng(n).normal(0, 1, (n, 2, 3, 4)).astype(F32)
        np.testing.assert_array_equal(run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"])
    assert {"shape", "gather", "reshape", "expand"} <= set(_steps(model))


def test_static_shape_arithmetic_is_folded() -> None:
    """Dimensions other than the batch are folded; x.size(1) * x.size(2) becomes a constant."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Slice", ["s", "one", "three", "zero"], ["hw"], name="slice"),
             helper.make_node("Concat", ["m1", "hw"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    consts = {"one": np.array([1], np.int64), "three": np.array([3], np.int64), "zero": np.array([0], np.int64),
              "m1": np.array([-1], np.int64)}
    model = _graph(nodes, ["N", 3, 5, 2], consts)
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 5, 2)).astype(F32)
    np.testing.assert_array_equal(run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"])
    assert _steps(model) == ["reshape"]


def test_fixed_batch_one_model_still_runs_all_samples_at_once() -> None:
    model = _flatten_by_shape(1)
    x = np.random.default_rng(2).normal(0, 1, (6, 2, 3, 4)).astype(F32)
    got = run_engine(model, {"x": x})["y"]
    ref = np.concatenate([run_ort(model, {"x": x[i:i + 1]}, fused=False)["y"] for i in range(6)])
    np.testing.assert_array_equal(got, ref)


def test_constant_of_shape_range_size_and_shape_slices() -> None:
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape", start=1, end=-1),
             helper.make_node("ConstantOfShape", ["s"], ["z"], name="cos", value=numpy_helper.from_array(
                 np.array([2.5], F32))),
             helper.make_node("Size", ["x"], ["n"], name="size"),
             helper.make_node("Cast", ["n"], ["nf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Range", ["r0", "n", "r1"], ["r"], name="range"),
             helper.make_node("Cast", ["r"], ["rf"], name="cast2", to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["rf"], ["rs"], name="rsum", keepdims=0),
             helper.make_node("Mul", ["z", "nf"], ["zn"], name="mul"),
             helper.make_node("Add", ["zn", "rs"], ["y"], name="add")]
    model = _graph(nodes, ["N", 3, 4], {"r0": np.array(0, np.int64), "r1": np.array(5, np.int64)})
    x = np.zeros((2, 3, 4), F32)
    np.testing.assert_array_equal(run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"])


def _space(op: str, **attrs: object) -> onnx.ModelProto:
    return _graph([helper.make_node(op, ["x"], ["y"], name="op", **attrs)], ["N", 8, 4, 6], {})


@pytest.mark.parametrize(("op", "attrs"), [("DepthToSpace", {"blocksize": 2, "mode": "DCR"}),
                                           ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}),
                                           ("SpaceToDepth", {"blocksize": 2})])
def test_depth_space_on_floats(op: str, attrs: dict[str, object]) -> None:
    model = _space(op, **attrs)
    x = np.random.default_rng(3).normal(0, 1, (3, 8, 4, 6)).astype(F32)
    got = run_engine(model, {"x": x})["y"]
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {"x": x})[0])
    np.testing.assert_array_equal(got, run_ort(model, {"x": x}, fused=False)["y"])


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("same_scale", [True, False])
def test_depth_to_space_on_codes_in_a_qdq_group(mode: str, same_scale: bool) -> None:
    consts = {"s": np.array(0.05, F32), "z": np.array(3, np.int8),
              "so": np.array(0.05 if same_scale else 0.07, F32), "zo": np.array(3 if same_scale else -2, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["d"]),
             helper.make_node("DepthToSpace", ["d"], ["m"], name="d2s", blocksize=2, mode=mode),
             helper.make_node("QuantizeLinear", ["m", "so", "zo"], ["y"])]
    model = _graph(nodes, ["N", 8, 3, 5], consts, TensorProto.INT8, TensorProto.INT8, opset=19)
    x = np.random.default_rng(4).integers(-128, 128, (4, 8, 3, 5)).astype(np.int8)
    got = run_engine(model, {"x": x})["y"]
    np.testing.assert_array_equal(got, run_ort(model, {"x": x}, fused=True)["y"])
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {"x": x})[0])


@pytest.mark.parametrize("op", ["Tile", "GatherElements"])
def test_tile_and_gather_elements_on_codes_and_floats(op: str) -> None:
    consts = {"s": np.array(0.05, F32), "z": np.array(3, np.int8),
              "p": np.array([1, 2, 1, 3], np.int64) if op == "Tile"
              else np.random.default_rng(5).integers(-3, 3, (1, 4, 3, 2)).astype(np.int64)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["d"]),
             helper.make_node(op, ["d", "p"], ["m"], name="op", **({} if op == "Tile" else {"axis": 3})),
             helper.make_node("QuantizeLinear", ["m", "s", "z"], ["y"])]
    model = _graph(nodes, ["N", 4, 3, 3], consts, TensorProto.INT8, TensorProto.INT8)
    x = np.random.default_rng(6).integers(-128, 128, (1, 4, 3, 3)).astype(np.int8)
    np.testing.assert_array_equal(run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=True)["y"])
    np.testing.assert_array_equal(run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"])


def test_mixed_static_and_batch_dimensions_fold_only_the_static_part() -> None:
    """x.view(x.size(0), x.size(1) * x.size(2), -1): the product of static sizes is folded."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "i0"], ["b"], name="gather0", axis=0),
             helper.make_node("Gather", ["s", "i1"], ["c"], name="gather1", axis=0),
             helper.make_node("Gather", ["s", "i2"], ["h"], name="gather2", axis=0),
             helper.make_node("Mul", ["c", "h"], ["ch"], name="mul"),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"], name="unsqueeze0"),
             helper.make_node("Unsqueeze", ["ch", "ax0"], ["ch1"], name="unsqueeze1"),
             helper.make_node("Concat", ["b1", "ch1", "m1"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    consts = {"i0": np.array(0, np.int64), "i1": np.array(1, np.int64), "i2": np.array(2, np.int64),
              "ax0": np.array([0], np.int64), "m1": np.array([-1], np.int64)}
    model = _graph(nodes, ["N", 3, 4, 5], consts)
    x = np.random.default_rng(7).normal(0, 1, (2, 3, 4, 5)).astype(F32)
    np.testing.assert_array_equal(run_engine(model, {"x": x})["y"], run_ort(model, {"x": x}, fused=False)["y"])
    steps = _steps(model)
    assert {"gather1", "gather2", "mul", "unsqueeze1"}.isdisjoint(steps)
    assert {"shape", "gather0", "concat", "reshape"} <= set(steps)
