"""Stable node names (DESIGN rule 8): unnamed nodes get one deterministic name at load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qprobe.backends import create_backend
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model
from qprobe.model.quant import build_quant_index


def _unnamed_qdq_add(path: Path) -> Path:
    """x -> Q -> DQ -> Add(DQ, DQ(const)) -> Q -> DQ, no node names at all, one duplicate name."""
    s = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.int8), "z")
    c = numpy_helper.from_array(np.array([3, -7, 11, 20], np.int8), "c")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["c", "s", "z"], ["cd"], name="dup"),
        helper.make_node("Add", ["xd", "cd"], ["y"], name="dup"),
        helper.make_node("QuantizeLinear", ["y", "s", "z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["out"]),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])], [s, z, c])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_two_loads_give_the_same_unique_names(tmp_path: Path) -> None:
    p = _unnamed_qdq_add(tmp_path / "m.onnx")
    a = [n.name for n in load_model(p).graph]
    b = [n.name for n in load_model(p).graph]
    assert a == b
    assert a == ["QuantizeLinear_0", "DequantizeLinear_1", "dup", "dup__1", "QuantizeLinear_4", "DequantizeLinear_5"]
    assert len(set(a)) == len(a)


def test_an_inspected_name_is_accepted_by_node_overrides(tmp_path: Path) -> None:
    m = load_model(_unnamed_qdq_add(tmp_path / "m.onnx"))
    add = next(o.name for o in build_quant_index(m).ops if o.op_type == "Add")
    assert add == "dup__1"
    plain = create_backend("engine:onnxruntime").open(m)
    wrong = create_backend("engine:onnxruntime", {f"nodes.{add}.compute": "float",
                                                  f"nodes.{add}.scale": "pow2"}).open(m)
    x = random_inputs(m, 32, seed=1).arrays
    assert wrong.run(x)["out"].shape == plain.run(x)["out"].shape
