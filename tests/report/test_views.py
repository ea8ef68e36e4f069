"""The derived views against closed forms and independent computations: chart positions, the error
series (its final value recomputed from onnxruntime and the engine with numpy), inferred local errors
only where an op's inputs are identical, the envelope chart of a hand-written explanation, fix rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from report_support import load

from qprobe.backends import create_backend
from qprobe.cli.common import example_paths
from qprobe.model.loader import load_model
from qprobe.report.cells import ticks
from qprobe.report.checklist import build_checklist
from qprobe.report.explanation_view import build_explanation_view
from qprobe.report.fix_view import build_fix_view, cost_text


def test_the_series_follows_the_comparison_rows_and_marks_the_culprit(tcn_dir: Path) -> None:
    r = load(tcn_dir)
    s = r.views["series"]
    assert [p["tensor"] for p in s["points"]] == [row["name"] for row in r.comparison["rows"]]  # type: ignore[index]
    culprits = [p for p in s["points"] if p["culprit"]]
    assert [p["op"] for p in culprits] == [r.verdict["culprit"]]
    assert s["culprit"]["i"] == culprits[0]["i"]
    n = s["n"]
    for p in s["points"]:
        assert p["u"] == pytest.approx((p["i"] + 0.5) / n)
    cos = next(panel for panel in s["panels"] if panel["key"] == "cos")
    assert cos["lo"] == 0.0 and cos["hi"] == 1.0  # every cos is >= 0 here: v is the cos itself
    for q in cos["acc"]:
        p = next(p for p in s["points"] if p["u"] == q["u"])
        assert q["v"] == pytest.approx(p["acc"]["cos"])


def test_measured_local_errors_are_the_isolated_runs_and_inferred_ones_have_identical_inputs(tcn_dir: Path) -> None:
    r = load(tcn_dir)
    isolated = {row["name"]: row for row in r.divergence["isolated"]}  # type: ignore[index]
    acc = {row["name"]: row for row in r.comparison["rows"]}  # type: ignore[index]
    proto = onnx.load(str(example_paths("tcn")[0]))
    producer = {o: n for n in proto.graph.node for o in n.output}
    for p in r.views["series"]["points"]:
        if p["local_basis"] == "measured":
            assert p["local"]["cos"] == pytest.approx(isolated[p["tensor"]]["st"]["cos"])
        elif p["local_basis"] == "inferred":
            assert p["tensor"] not in isolated and p["local"] == p["acc"]
            q = producer[p["tensor"]]  # the QuantizeLinear; behind it the op, behind that its DequantizeLinear inputs
            op = producer.get(q.input[0], q)
            codes = [producer[i].input[0] for i in op.input if i in producer and producer[i].op_type
                     == "DequantizeLinear"]
            codes = [c for c in codes if c in acc]  # activations (weights are initializers)
            assert all(acc[c]["verdict"] == "exact" for c in codes), p["tensor"]


def _ort_fused(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"window": x[i : i + 1]})[0] for i in range(len(x))])


def test_the_final_outputs_cos_is_what_numpy_computes_from_both_backends(tcn_dir: Path) -> None:
    model_path, inputs_path = example_paths("tcn")
    with np.load(inputs_path) as z:
        x = z["window"]
    ref = _ort_fused(model_path, x).astype(np.float64).ravel()
    session = create_backend("engine:arith16-wrap").open(load_model(model_path))
    tgt = np.asarray(session.run({"window": x})["log_conc"], dtype=np.float64).ravel()
    expected = float(np.dot(ref, tgt) / (np.linalg.norm(ref) * np.linalg.norm(tgt)))
    final = next(p for p in load(tcn_dir).views["series"]["points"] if p["tensor"] == "log_conc")
    assert final["acc"]["cos"] == pytest.approx(expected, abs=1e-6)


def test_fixed_onnx_is_right_on_the_target_by_numpy(tcn_dir: Path) -> None:
    """The report's fix, run again here: the fixed model on the target against ort-fused on the original."""
    model_path, inputs_path = example_paths("tcn")
    with np.load(inputs_path) as z:
        x = z["window"]
    ref = _ort_fused(model_path, x).astype(np.float64).ravel()
    session = create_backend("engine:arith16-wrap").open(load_model(tcn_dir / "fixed.onnx"))
    got = np.asarray(session.run({"window": x})["log_conc"], dtype=np.float64).ravel()
    cos = float(np.dot(ref, got) / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert cos >= 0.999
    best = load(tcn_dir).fix["best"]  # type: ignore[index]
    assert best["final_cos"] == pytest.approx(cos, abs=1e-6)


def test_ticks_are_round_and_placed_on_the_axis() -> None:
    t = ticks(-20.0, 20.0, 4)
    assert [x["value"] for x in t] == [-20, -10, 0, 10, 20]
    assert [x["v"] for x in t] == [0.0, 0.25, 0.5, 0.75, 1.0]


def _explanation() -> dict[str, object]:
    """A hand-written qprobe.explanation/1 document (the fields CONTRACTS.md names)."""
    pts = [(0.5, 0.5, True), (1.0, 1.0, True), (2.0, -2.0, False), (4.0, 0.0, False)]
    return {
        "schema": "qprobe.explanation/1", "explained": True, "node": "add", "op_type": "Add", "op_class": "eltwise",
        "best": {"base": "b", "knobs": {"coeff_overflow": "wrap"}, "exact_match": 0.9995, "mean_delta_lsb": 0.001,
                 "mean_abs_delta_lsb": 0.002, "max_abs_lsb": 1, "model_failures": 0},
        "hypotheses": [{"base": "b", "knobs": {}, "exact_match": 0.5, "mean_delta_lsb": 1.0,
                        "mean_abs_delta_lsb": 1.0, "max_abs_lsb": 9}],
        "linear_fit": {"kind": "operands", "points": 100, "offset": {"effective": -8.0},
                       "operands": [{"tensor": "a", "expected": 2.0, "effective": -2.0}]},
        "sentence": "s", "profile": "name = 'x'", "target_runs": 3,
        "envelope": {"op_class": "eltwise", "parameter": "operand_ratio", "safe": [[0.5, 2.0]], "boundary": 2.0,
                     "statement": "Add is exact below 2", "points": [
                         {"ratio": r, "expected": r, "effective": e, "exact_share": 1.0 if ok else 0.0, "safe": ok}
                         for r, e, ok in pts]},
    }


def test_the_envelope_chart_puts_ratios_on_a_log2_axis() -> None:
    v = build_explanation_view(_explanation())
    assert v is not None and v["best"]["label"] == "b + coeff_overflow=wrap"
    c = v["envelope"]["chart"]
    # x axis: log2 from -1 (ratio 1/2) to 2 (ratio 4)
    assert [p["u"] for p in c["points"]] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert c["boundary"]["u"] == pytest.approx(2 / 3)
    assert c["bands"] == [{"u0": 0.0, "u1": pytest.approx(2 / 3)}]
    assert [t["label"] for t in c["x_ticks"]] == ["1/2", "1", "2", "4"]
    # y axis: linear over the measured effective coefficients (and 0, 1), padded by 8 % each side
    lo, hi = -2.0 - 0.08 * 3.0, 1.0 + 0.08 * 3.0
    assert [p["v"] for p in c["points"]] == pytest.approx([(e - lo) / (hi - lo) for e in (0.5, 1.0, -2.0, 0.0)])
    assert [p["safe"] for p in c["points"]] == [True, True, False, False]
    assert c["operands"][0]["u"] == pytest.approx(2 / 3)
    assert c["operands"][0]["v"] == pytest.approx(0.08 * 3 / (hi - lo))
    for p in c["expected"]:  # the expected line is effective = ratio
        x = -1 + 3 * p["u"]
        assert lo + p["v"] * (hi - lo) == pytest.approx(2.0**x)


def test_fix_rows_and_the_board_workarounds_from_a_fix_document() -> None:
    stage = {"stage": "emulation", "backend": "engine:fitted.toml", "final_cos": 0.99, "rmse_lsb": 1.0,
             "max_abs_lsb": 2.0, "truth_rmse": None, "reason": "ok"}
    fix = {"schema": "qprobe.fix/1", "node": "add", "op_type": "Add", "ratios": [2.05, 1.06], "passed": True,
           "best": {"pass": "raise", "verdict": "predicted", "backend": "engine:fitted.toml", "final_cos": 0.99,
                    "cost": {"ops_added": 0}},
           "candidates": [
               {"pass": "raise", "summary": "r", "verdict": "predicted", "verdict_reason": "fine", "applied": True,
                "cost": {"ops_added": 1, "macs_added": 1000, "param_bytes_added": -5, "ops_off_accelerator": 2},
                "measures_by_stage": {"reference": {**stage, "stage": "reference"}, "emulation": stage}},
               {"pass": "shared-scale", "summary": "s", "motivating": True, "verdict": "fails-emulation",
                "board": {"fails_as_on_board": True, "why": "ratio 2.05 is still outside"},
                "measures_by_stage": {}, "applied": True, "cost": {}}]}
    v = build_fix_view(fix)
    assert v is not None
    assert [r["pass"] for r in v["rows"]] == ["raise", "shared-scale"]
    assert v["rows"][0]["stage"] == "emulation"  # the furthest stage reached decides
    assert v["rows"][0]["cost"] == "+1 ops, +1,000 MACs, -5 B, 2 op(s) off the accelerator"
    assert [(w["pass"], w["fails_as_on_board"]) for w in v["workarounds"]] == [("shared-scale", True)]
    assert cost_text(None) == "-"


def test_the_checklist_opens_the_board_items_only_while_the_error_is_unexplained() -> None:
    failing = {"passed": False, "target": "t", "probe_effects": [
        {"backend": "t", "checked": True, "changed_outputs": [], "detail": ""}]}
    unexplained = {"explained": False, "best": {"exact_match": 0.8}, "causes": [{"name": "memory", "evidence": "e"}]}
    open_items = build_checklist(failing, None, unexplained)
    assert open_items[0]["status"] == "ruled out"
    assert {c["status"] for c in open_items if c["source"] == "on the board"} == {"open"}
    assert any(c["check"].endswith("memory") for c in open_items)
    explained = build_checklist(failing, None, {"explained": True, "best": {"exact_match": 1.0}})
    assert {c["status"] for c in explained if c["source"] == "on the board"} == {"unlikely"}
