"""QOperator models whose weights come from Constant nodes (issue 8 item 3): the weights are
constants in the quantization view, in cuts and in localize (not cut inputs)."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from qprobe.backends import create_backend
from qprobe.compare import compare_backends
from qprobe.localize import localize
from qprobe.model.extract import extract_subgraph
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model
from qprobe.model.quant import build_quant_index

from models.residual import qoperator_residual_model


def _with_constant_nodes(path: Path) -> Path:
    """Every initializer of a QLinearConv/QGemm weight moved into a Constant node, as some exporters write."""
    m = onnx.load(str(path))
    g = m.graph
    weights = {n.input[3] for n in g.node if n.op_type in ("QLinearConv", "QGemm", "QLinearMatMul")}
    consts = [helper.make_node("Constant", [], [i.name], name=f"const_{i.name}", value=i)
              for i in g.initializer if i.name in weights]
    keep = [i for i in g.initializer if i.name not in weights]
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = consts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    out = path.with_name("qop_constants.onnx")
    onnx.save(m, out)
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(_with_constant_nodes(qoperator_residual_model(tmp_path_factory.mktemp("qop"))))


def test_constant_weights_are_not_activation_operands(model: ir.Model) -> None:
    idx = build_quant_index(model)
    convs = [o for o in idx.ops if o.op_type == "QLinearConv"]
    assert convs and all(len(o.inputs) == 1 for o in convs)  # the data input only


def test_localize_and_extract_work_on_a_qoperator_model(model: ir.Model) -> None:
    idx = build_quant_index(model)
    add = next(o for o in idx.ops if o.op_type == "QLinearAdd")
    inputs = random_inputs(model, 6, seed=4)
    # the defect: the engine with power-of-two multipliers on that one QLinearAdd (scoped into every cut)
    target = create_backend("engine:onnxruntime", {f"nodes.{add.name}.scale": "pow2"})
    for strategy in ("probe-all", "isolate", "bisect"):
        div = localize(model, create_backend("ort-fused"), target, inputs, strategy=strategy).divergence
        assert div.culprit is not None and div.culprit.op == add.name, strategy
    conv = next(o for o in idx.ops if o.op_type == "QLinearConv" and o.inputs[0] in add.inputs)
    cut = extract_subgraph(model, list(conv.inputs), list(add.outputs))
    assert {str(v.name) for v in cut.graph.inputs} == set(conv.inputs) | (set(add.inputs) - set(conv.outputs))
    cmp = compare_backends(model, create_backend("ort"), create_backend("engine:onnxruntime"), inputs, probe="all")
    assert cmp.passed
