"""``explanation.json`` (schema ``qprobe.explanation/1``): strict JSON that round-trips, and its contract fields.

Oracle: ``json.dumps(..., allow_nan=False)`` (strict JSON) and field-by-field equality after
``from_json``; the fields CONTRACTS.md promises to ``fix`` are read from the JSON alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx_ir as ir
import pytest

from qprobe.backends import create_backend
from qprobe.explain import SCHEMA, Envelope, EnvelopePoint, Explanation, Hypothesis, explain
from qprobe.explain.envelope import build_envelope
from qprobe.model.inputs import InputSet
from qprobe.serde import SchemaError


def _explanation() -> Explanation:
    pts = [EnvelopePoint(r, r, float("nan") if r > 3 else r, 1.0 if r < 2 else 0.0, 0.0 if r < 2 else 3.0,
                         0 if r < 2 else 40) for r in (0.5, 1.5, 2.0, 4.0)]
    env = build_envelope("eltwise", "Add", "operand_ratio", pts)
    h = Hypothesis("eltwise", "arith16-wrap", {"coeff_overflow": "saturate"}, 0.995, 0.01, 0.02, 1, "affine unit", 3, 0)
    return Explanation(True, "add", "Add", "eltwise", h, (h,), {"kind": "operands", "x": float("inf")}, "s", env,
                       "name = 'x'\n", 4, ("n",), characterization_runs=2)


def test_the_document_is_strict_json_and_round_trips(tmp_path: Path) -> None:
    e = _explanation()
    doc = e.to_json()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["schema"] == SCHEMA
    assert doc["linear_fit"]["x"] is None and doc["envelope"]["points"][-1]["effective"] is None
    e.save(tmp_path / "e.json")
    back = Explanation.load(tmp_path / "e.json")
    assert back.to_json() == doc
    assert back.best == e.best and back.envelope is not None and back.envelope.boundary == 2.0


def test_fix_can_work_from_the_document_alone() -> None:
    doc = json.loads(json.dumps(_explanation().to_json()))
    for key in ("explained", "node", "op_type", "best", "hypotheses", "linear_fit", "envelope", "profile",
                "target_runs"):
        assert key in doc
    assert set(doc["best"]) >= {"knobs", "exact_match", "mean_delta_lsb", "max_abs_lsb"}
    env = Envelope.from_json(doc["envelope"])
    assert env.contains(1.0) and not env.contains(2.5)
    assert set(doc["envelope"]) >= {"op_class", "parameter", "safe", "boundary", "points", "statement"}


def test_other_documents_are_refused() -> None:
    with pytest.raises(SchemaError, match="explanation"):
        Explanation.from_json({"schema": "qprobe.divergence/1"})


def test_a_hypothesis_is_its_base_plus_its_knobs() -> None:
    h = Hypothesis("eltwise", "arith16-wrap", {"coeff_overflow": "saturate"}, 1.0, 0.0, 0.0, 0)
    assert h.numerics("Add").coeff_overflow == "saturate" and h.numerics("Add").structure == "affine"
    assert h.label() == "arith16-wrap + coeff_overflow=saturate"


@pytest.mark.slow
def test_explain_from_a_bundle_or_a_divergence_file(tcn: tuple[ir.Model, InputSet], tmp_path: Path) -> None:
    from explain_support import Counting

    from qprobe.localize import localize
    from qprobe.localize.culprit import culprit_cut
    from qprobe.report.bundle import Repro, write_bundle

    model, inputs = tcn
    loc = localize(model, create_backend("ort-fused"), create_backend("engine:arith16-wrap"), inputs)
    div = loc.divergence
    write_bundle(tmp_path / "b", Repro(div.verdict(), culprit_cut(model, div, loc.isolated), "ort-fused",
                                       "engine:arith16-wrap", "tcn", divergence=div))
    div.save(tmp_path / "div.json")
    for kw, runs in (({"bundle": tmp_path / "b"}, 1), ({"divergence": tmp_path / "div.json"}, 2)):
        target = Counting(create_backend("engine:arith16-wrap"))
        e = explain(model, create_backend("ort-fused"), target, inputs, **kw)  # type: ignore[arg-type]
        assert e.explained and e.node == "block0_add"
        assert e.target_runs == target.opened == runs  # a bundle holds the isolated run already
