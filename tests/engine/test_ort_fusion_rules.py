"""The QDQ grouping rule of ``engine/graph.py`` mirrors what onnxruntime 1.32 fuses.

Oracle: onnxruntime's optimized graph (``optimized_model_filepath``) and its outputs.
Measured facts this relies on:
* a DequantizeLinear output that is also a graph output does not stop fusion
  (onnxruntime duplicates the DequantizeLinear);
* the op's own float output as a graph output does stop it (the op runs in float);
* Conv -> Relu -> Q with the Q zero point at the type minimum fuses (the Relu is dropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import mismatch, run_engine, run_ort, session


def _conv_add(extra_outputs: tuple[str, ...] = (), relu_zp: int | None = None) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    f32 = np.float32

    def c(name: str, v: object) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(v), name)

    inits = [c("sx", f32(0.05)), c("zx", np.int8(3)), c("w", rng.integers(-50, 50, (4, 4, 3, 3)).astype(np.int8)),
             c("sw", np.full(4, 0.01, f32)), c("zw", np.zeros(4, np.int8)),
             c("b", rng.integers(-100, 100, 4).astype(np.int32)), c("sb", np.full(4, f32(0.05) * f32(0.01), f32)),
             c("zb", np.zeros(4, np.int32)), c("sy", f32(0.07)), c("zy", np.int8(-128 if relu_zp is None else relu_zp)),
             c("sz", f32(0.09)), c("zz", np.int8(1))]
    conv_out = "c"
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wd"], name="dqw", axis=0),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bd"], name="dqb", axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    if relu_zp is not None:
        nodes.append(helper.make_node("Relu", ["c"], ["cr"], name="relu"))
        conv_out = "cr"
    nodes += [helper.make_node("QuantizeLinear", [conv_out, "sy", "zy"], ["cq"], name="qc"),
              helper.make_node("DequantizeLinear", ["cq", "sy", "zy"], ["cd"], name="dqc"),
              helper.make_node("Add", ["cd", "xd"], ["a"], name="add"),
              helper.make_node("QuantizeLinear", ["a", "sz", "zz"], ["aq"], name="qa")]
    outs = [helper.make_tensor_value_info("aq", TensorProto.INT8, None),
            helper.make_tensor_value_info("cq", TensorProto.INT8, None)]
    outs += [helper.make_tensor_value_info(e, TensorProto.FLOAT, None) for e in extra_outputs]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _fused_ops(model: onnx.ModelProto, tmp: Path) -> set[str]:
    path = tmp / "optimized.onnx"
    session(model, fused=True, save=str(path))
    return {n.op_type for n in onnx.load(path).graph.node}


def _agree(model: onnx.ModelProto) -> None:
    x = np.random.default_rng(1).standard_normal((16, 4, 8, 8)).astype(np.float32) * 2
    assert mismatch(run_engine(model, {"x": x}), run_ort(model, {"x": x}, fused=True)) == {}


def test_dq_output_as_graph_output_keeps_fusion(tmp_path: Path) -> None:
    model = _conv_add(("xd", "cd"))
    assert {"QLinearConv", "QLinearAdd"} <= _fused_ops(model, tmp_path)
    _agree(model)


def test_op_float_output_as_graph_output_stops_fusion(tmp_path: Path) -> None:
    model = _conv_add(("c",))
    ops = _fused_ops(model, tmp_path)
    assert "QLinearConv" not in ops and "Conv" in ops
    _agree(model)


def test_relu_with_minimum_zero_point_is_folded(tmp_path: Path) -> None:
    model = _conv_add(relu_zp=-128)
    assert "QLinearConv" in _fused_ops(model, tmp_path)
    _agree(model)
