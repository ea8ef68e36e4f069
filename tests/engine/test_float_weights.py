"""Float weights inside QDQ groups: what onnxruntime's optimizer does, and that the engine
and ``qprobe.model.patterns`` reproduce it exactly.

Oracle: onnxruntime itself. ``ORT_ENABLE_BASIC`` with ``optimized_model_filepath`` shows the
graph after its WeightBiasQuantization (Level 1) and constant folding, before the QDQ
fusion: the new initializers ``<node>_weight_q/_weight_scale/_weight_zp`` and
``<node>_bias_int32/_bias_scale`` are onnxruntime's own numbers. ``ort-fused`` outputs are
the arithmetic the engine must match bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_engine, run_ort, with_q_outputs

from qprobe.backends.engine.ort_weights import weight_params
from qprobe.model.patterns import float_weights_in_qdq

F32 = np.float32
RNG = np.random.default_rng(0)


def _case(op: str = "Conv", *, weight: str = "float", bias: str | None = "float", relu: bool = False,
          branch: bool = False, x_axis_scale: bool = False, w_axis: int | None = 0, trans_b: int = 0,
          constant_nodes: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> op(W, B) [-> Relu] -> Q -> DQ -> y, with W/B float, DQ'd (per tensor or per channel)."""
    conv = op == "Conv"
    w_shape = (4, 3, 3, 3) if conv else ((4, 6) if trans_b else (6, 4))
    w = RNG.normal(0, 0.3, w_shape).astype(F32)
    w.flat[0] = 0.9  # asymmetric range: a nonzero weight zero point
    inits: dict[str, np.ndarray] = {"sx": np.array([0.05] * (3 if x_axis_scale else 1), F32).reshape(-1)
                                    if x_axis_scale else np.array(0.05, F32),
                                    "zx": np.array([3] * 3, np.uint8) if x_axis_scale else np.array(3, np.uint8),
                                    "sy": np.array(0.07, F32), "zy": np.array(128, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx", axis=1),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dqx", axis=1)]
    ins = ["xd", "w"]
    if weight == "float":
        inits["w"] = w
    else:
        per = weight == "per_channel"
        sw = (np.abs(w).max(axis=tuple(range(1, w.ndim)) if conv or trans_b else 0) / 127).astype(F32)
        sw = sw if per else np.array(np.abs(w).max() / 127, F32)
        shape = (-1,) + (1,) * (w.ndim - 1) if conv or trans_b else (1, -1)
        inits.update(wq=np.clip(np.rint(w / (sw.reshape(shape) if per else sw)), -127, 127).astype(np.int8), sw=sw)
        attrs = {} if not per or w_axis is None else {"axis": w_axis}
        nodes.append(helper.make_node("DequantizeLinear", ["wq", "sw"], ["w"], name="dqw", **attrs))
    if bias == "float":
        inits["b"] = RNG.normal(0, 0.1, 4).astype(F32)
        ins.append("b")
    elif bias == "dq":
        inits.update(bq=RNG.integers(-300, 300, 4).astype(np.int32), sb=np.array(0.05 * 0.005, F32))
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "sb"], ["b"], name="dqb"))
        ins.append("b")
    attrs = {"pads": [1, 1, 1, 1]} if conv else ({"transB": 1} if trans_b else {})
    nodes.append(helper.make_node(op, ins, ["c"], name="target", **attrs))
    out = "c"
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["cr"], name="relu"))
        out = "cr"
    nodes += [helper.make_node("QuantizeLinear", [out, "sy", "zy"], ["cq"], name="qc"),
              helper.make_node("DequantizeLinear", ["cq", "sy", "zy"], ["y"], name="dqc")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if branch:
        nodes.append(helper.make_node("Sigmoid", ["c"], ["side"], name="side"))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, None))
    x_shape = ["N", 3, 6, 6] if conv else ["N", 6]
    if constant_nodes:
        nodes = [helper.make_node("Constant", [], [k], name=f"const_{k}", value=numpy_helper.from_array(v, k))
                 for k, v in inits.items()] + nodes
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)], outputs,
                              [] if constant_nodes else [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


CASES: dict[str, tuple[dict[str, object], bool]] = {  # name -> (builder options, onnxruntime rewrites it)
    "conv_float_weight_and_bias": ({}, True),
    "conv_float_weight_no_bias": ({"bias": None}, True),
    "conv_float_weight_relu": ({"relu": True}, True),
    "conv_weights_in_constant_nodes": ({"constant_nodes": True}, True),
    "conv_per_channel_weight_float_bias": ({"weight": "per_channel"}, True),
    "conv_per_tensor_weight_float_bias": ({"weight": "per_tensor"}, True),
    "conv_float_weight_quantized_bias": ({"bias": "dq"}, False),
    "conv_quantized_weight_no_bias": ({"weight": "per_channel", "bias": None}, False),
    "conv_branching_output": ({"branch": True}, False),
    "conv_per_axis_input": ({"x_axis_scale": True}, False),
    "gemm_float": ({}, True),
    "gemm_float_trans_b": ({"trans_b": 1}, True),
    "gemm_per_channel_weight_float_bias": ({"weight": "per_channel", "w_axis": 1}, True),
    "gemm_per_channel_weight_default_axis": ({"weight": "per_channel", "w_axis": None}, True),
    "matmul_float_weight": ({"bias": None}, False),
}


def _build(name: str) -> onnx.ModelProto:
    options, _ = CASES[name]
    op = "Gemm" if name.startswith("gemm") else ("MatMul" if name.startswith("matmul") else "Conv")
    return _case(op, **options)  # type: ignore[arg-type]


def _basic(model: onnx.ModelProto, tmp: Path) -> onnx.ModelProto:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(tmp / "basic.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return onnx.load(tmp / "basic.onnx")


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [16] + [d.dim_value for d in dims[1:]]
    return {"x": np.random.default_rng(1).uniform(-1, 1.5, shape).astype(F32)}


@pytest.mark.parametrize("name", list(CASES))
def test_detection_names_the_nodes_onnxruntime_rewrites(name: str, tmp_path: Path) -> None:
    model = _build(name)
    rewritten = {i.name for i in _basic(model, tmp_path).graph.initializer if i.name.startswith("target_")}
    assert bool(rewritten) == CASES[name][1], rewritten
    assert float_weights_in_qdq(ir.from_proto(model)) == (["target"] if rewritten else [])


@pytest.mark.parametrize("name", list(CASES))
def test_engine_matches_ort_fused_bit_for_bit(name: str) -> None:
    model = with_q_outputs(_build(name))
    feeds = _feeds(model)
    got, ref = run_engine(model, feeds), run_ort(model, feeds, fused=True)
    for k, v in ref.items():
        if v.dtype.kind == "f" and k == "side":
            assert float(np.max(np.abs(got[k] - v))) <= 1e-6, k
        else:
            np.testing.assert_array_equal(got[k], v, err_msg=k)


@pytest.mark.parametrize("name", [n for n, (_o, rewritten) in CASES.items() if rewritten])
def test_quantized_weights_and_biases_are_onnxruntimes(name: str, tmp_path: Path) -> None:
    """The engine's weight scale, zero point, codes and int32 bias are the initializers onnxruntime writes."""
    from qprobe.backends.engine.graph import read_graph
    from qprobe.backends.engine.ort_weights import quantize_float_weights

    model = _build(name)
    ort_inits = {i.name: numpy_helper.to_array(i) for i in _basic(model, tmp_path).graph.initializer}
    view = quantize_float_weights(read_graph(ir.from_proto(model)), lambda n: True, {})
    mine = {k.replace("target::ort", "target"): v for k, v in view.consts.items() if k.startswith("target::ort")}
    assert set(mine) == {k for k in ort_inits if k.startswith("target_")}
    for k, v in mine.items():
        assert v.dtype == ort_inits[k].dtype, k
        np.testing.assert_array_equal(v.reshape(-1), ort_inits[k].reshape(-1), err_msg=k)


def test_weight_parameters_are_asymmetric_per_tensor() -> None:
    w = np.array([-0.2, 0.0, 0.9, 0.4], F32)
    scale, zp = weight_params(w)
    assert scale == F32(F32(1.1) / F32(255)) and int(zp) == int(np.rint(-128 + 0.2 / float(scale)))
    assert weight_params(np.zeros(3, F32)) == (F32(1.0), np.int8(-128))


def test_other_profiles_keep_float_weights() -> None:
    """arith16-wrap, tflite and exact compute the float conv the model has (onnxruntime's unfused path)."""
    model = with_q_outputs(_build("conv_float_weight_and_bias"))
    feeds = _feeds(model)
    unfused = run_ort(model, feeds, fused=False)["cq"]
    fused = run_ort(model, feeds, fused=True)["cq"]
    assert np.mean(unfused != fused) > 0.05
    for profile in ("arith16-wrap", "tflite", "exact"):
        got = run_engine(model, feeds, profile)["cq"]
        assert np.mean(got != unfused) <= 0.01 and int(np.max(np.abs(got.astype(int) - unfused))) <= 1, profile
    np.testing.assert_array_equal(run_engine(model, feeds, "onnxruntime", {"float_weights": "float"})["cq"], unfused)


def test_weights_with_their_own_quantize_linear_are_folded_like_onnxruntime() -> None:
    """float W -> QuantizeLinear -> DequantizeLinear -> Conv: both fold the QuantizeLinear of the
    constant, so the group runs as an integer conv (QLinearConv in onnxruntime)."""
    w = RNG.normal(0, 0.3, (4, 3, 3, 3)).astype(F32)
    inits = {"sx": np.array(0.05, F32), "zx": np.array(3, np.uint8), "w": w,
             "sw": (np.abs(w).max(axis=(1, 2, 3)) / 127).astype(F32), "zw": np.zeros(4, np.int8),
             "sy": np.array(0.07, F32), "zy": np.array(128, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("QuantizeLinear", ["w", "sw", "zw"], ["wq"], name="qw", axis=0),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["cq"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                              [helper.make_tensor_value_info("cq", TensorProto.UINT8, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = _feeds(model)
    np.testing.assert_array_equal(run_engine(model, feeds)["cq"], run_ort(model, feeds, fused=True)["cq"])
    from qprobe.backends.engine import EngineBackend, get_profile

    steps = [s.node for s in EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(model)).program.steps]
    assert "qw" not in steps and "conv" in steps
