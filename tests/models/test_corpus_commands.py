"""Issue 8's "done means": on every corpus model, inspect, compare (ort vs ort-fused, ort-fused vs
engine:onnxruntime --probe all), localize (against engine:arith16-wrap and against a target that
fuses a Conv with the op after it) and extract all complete, with the right findings where they
are known."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx_ir as ir
import pytest

from qprobe.backends import create_backend
from qprobe.cli.common import default_reference
from qprobe.cli.main import run
from qprobe.compare import compare_backends
from qprobe.localize import build_op_graph, localize
from qprobe.model.extract import extract_subgraph
from qprobe.model.inputs import InputSet
from qprobe.model.loader import load_model
from qprobe.model.patterns import float_weights_in_qdq
from qprobe.model.quant import build_quant_index

from models.corpus import CORPUS, Built

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "localize"))
from fusing_target import FusingTarget

NAMES = sorted(CORPUS)


def _inputs(built: Built, m: ir.Model, n: int = 8) -> InputSet:
    return InputSet({k: v[:n] for k, v in built.samples().items()}, "corpus calibration")


def _fusable_pair(m: ir.Model) -> tuple[str, str] | None:
    """A Conv (else any op) whose output feeds exactly one op: what a compiler fuses."""
    graph = build_op_graph(m, build_quant_index(m))
    pairs = []
    for p in graph.ops:
        users = [c for c in graph.ops if set(p.outputs) & set(c.inputs)]
        if len(users) == 1:
            pairs.append((p, users[0]))
    convs = [pc for pc in pairs if pc[0].op_type in ("Conv", "QLinearConv")]
    best = (convs or pairs or [None])[0]
    return None if best is None else (best[0].name, best[1].name)


@pytest.mark.parametrize("name", NAMES)
def test_every_command_completes(name: str, corpus: dict[str, Built], capsys: pytest.CaptureFixture[str]) -> None:
    built = corpus[name]
    m = load_model(built.int8)
    assert run(["inspect", str(built.int8)]) == 0
    out = capsys.readouterr().out
    assert "compute ops" in out
    if float_weights_in_qdq(m):
        assert "float weights inside QDQ groups" in out and default_reference(m)[0] == "ort"
    x = _inputs(built, m)
    compare_backends(m, create_backend("ort"), create_backend("ort-fused"), x)
    cmp = compare_backends(m, create_backend("ort-fused"), create_backend("engine:onnxruntime"), x, probe="all")
    if built.integer_reference:
        assert all(r.verdict == "exact" for r in cmp.rows if r.lsb is not None and r.quant is not None), name
    ref = create_backend(default_reference(m)[0])
    localize(m, ref, create_backend("engine:arith16-wrap"), x)
    graph = build_op_graph(m, build_quant_index(m))
    first = graph.ops[0]
    cut = extract_subgraph(m, list(first.inputs), list(first.outputs))
    assert {str(v.name) for v in cut.graph.outputs} == set(first.outputs)


@pytest.mark.parametrize("name", NAMES)
def test_localize_names_a_fused_pair(name: str, corpus: dict[str, Built]) -> None:
    built = corpus[name]
    m = load_model(built.int8)
    pair = _fusable_pair(m)
    if pair is None:
        pytest.fail(f"{name}: no op feeds exactly one op")
    ref = create_backend("ort")
    div = localize(m, ref, FusingTarget(pair[0], pair[1], 2.0), _inputs(built, m)).divergence
    assert any(r.failed for r in div.final_outputs), (name, pair)  # the fused defect reaches the outputs
    assert div.culprit is not None, (name, pair, div.verdict(), div.notes)
    assert set(pair) <= set(div.culprit.group or (div.culprit.op,)), (name, pair, div.verdict())
