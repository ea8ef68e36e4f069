"""A fused group as the culprit (localize blames a pair that is wrong only when fused): the report
marks both members in the error series and draws the pair as one node with the operands it reads
from outside, and renders."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "localize"))
from fusing_target import FusingTarget

from qprobe.backends import create_backend
from qprobe.compare import compare_backends
from qprobe.localize import localize
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model
from qprobe.report.build import build_report
from qprobe.report.html import render_html
from qprobe.report.markdown import render_markdown

from models.residual import qdq_residual_model


def test_a_fused_pair_is_one_culprit_node_with_its_outside_operands(tmp_path: Path) -> None:
    path = qdq_residual_model(tmp_path)
    model = load_model(path)
    ref, target = create_backend("ort"), FusingTarget("conv2", "add", 0.7)
    inputs = random_inputs(model, 8, seed=3)
    cmp = compare_backends(model, ref, target, inputs)
    div = localize(model, ref, target, inputs).divergence
    assert div.culprit is not None and div.culprit.group == ("conv2", "add")
    r = build_report("localize", model, "m", comparison=cmp.to_json(), divergence=div.to_json())
    assert r.verdict["culprit"] == "conv2+add"
    marked = [p["op"] for p in r.views["series"]["points"] if p["culprit"]]
    assert marked == ["conv2", "add"]
    g = r.views["neighbourhood"]
    assert g["focus"] == "conv2+add" and g["op_type"] == "Conv+Add"
    # conv2 reads conv1's codes, add reads conv1's codes too (the residual): one outside operand, from conv1
    proto = onnx.load(str(path))
    producer = {o: n for n in proto.graph.node for o in n.output}
    weights = {i.name for i in proto.graph.initializer}
    dq_inputs = {producer[i].input[0] for n in proto.graph.node if n.name in ("conv2", "add") for i in n.input
                 if i in producer and producer[i].op_type == "DequantizeLinear" and producer[i].input[0] not in weights}
    inner = {o for n in proto.graph.node if n.op_type == "QuantizeLinear" and producer.get(n.input[0]) is not None
             and producer[n.input[0]].name == "conv2" for o in n.output}
    operands = {e["tensor"] for e in g["edges"] if e["kind"] == "operand"}
    assert operands == dq_inputs - inner
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for e in (e for e in g["edges"] if e["kind"] == "operand"):
        q = producer[e["tensor"]]
        assert e["scale"] == float(inits[q.input[1]])
    html = render_html(r)
    assert "culprit: conv2, add" in html and "conv2+add" in html
    assert "`conv2+add`" in render_markdown(r)
