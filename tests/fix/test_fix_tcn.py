"""The motivating case end to end: fix the example TCN for engine:arith16-wrap.

Oracles: onnxruntime (fused, on the original model) and the target itself, run by the test on
the returned model; the example's ground truth; the closed-form envelope of the hypothesis
(a 16-bit coefficient round(r * 2**14) does not fit from r = 2 on) for the board verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from fix_support import Counting, cos, is_int8_qdq_op, rmse
from rewrite_support import ort_run

from qprobe.backends import create_backend
from qprobe.fix import VERDICTS, FixResult, fix
from qprobe.model.inputs import InputSet
from qprobe.model.loader import to_proto

MOTIVATING = ("concat-conv", "int16-neighbours", "shared-scale", "fold-residual")


@pytest.fixture(scope="module")
def fixed(tcn: ir.Model, tcn_inputs: InputSet, tcn_dir: Path, truth: dict[str, np.ndarray]) -> tuple[FixResult, int]:
    target = Counting(create_backend("engine:arith16-wrap"))
    result = fix(tcn, create_backend("ort-fused"), target, tcn_inputs, emulation=create_backend("engine:arith16-wrap"),
                 float_model=tcn_dir / "tcn_float.onnx", calibration=tcn_dir / "tcn_calibration.npz", truth=truth)
    return result, target.opens


def test_the_best_candidate_is_an_int8_model_the_target_computes_right(
        fixed: tuple[FixResult, int], tcn: ir.Model, tcn_inputs: InputSet, truth: dict[str, np.ndarray]) -> None:
    result, _ = fixed
    best = result.best
    assert best is not None and best.verdict == "verified" and result.passed
    assert best.model is not None
    proto = to_proto(best.model)
    assert is_int8_qdq_op(proto, "block0_add", "Add")  # the culprit is still an int8 Add
    reference = ort_run(to_proto(tcn), tcn_inputs.arrays, fused=True)["log_conc"]
    on_target = create_backend("engine:arith16-wrap").open(best.model).run(tcn_inputs.arrays)["log_conc"]
    assert cos(reference, on_target) >= 0.999
    original = rmse(reference, truth["log_conc"])
    assert rmse(on_target, truth["log_conc"]) <= 1.05 * original
    broken = create_backend("engine:arith16-wrap").open(tcn).run(tcn_inputs.arrays)["log_conc"]
    assert cos(reference, broken) < 0.9  # it was broken before


def test_the_four_workarounds_of_the_board_have_verdicts_and_reasons(fixed: tuple[FixResult, int]) -> None:
    result, _ = fixed
    by_pass = {c.pass_name: c for c in result.candidates}
    for name in MOTIVATING:
        c = by_pass[name]
        assert c.verdict in VERDICTS and c.verdict_reason and c.board is not None and c.board.why
    # the hypothesis' arithmetic: int16 and a shared scale leave a ratio of 2.05 >= 2 on the Add
    for name in ("int16-neighbours", "shared-scale"):
        # type: ignore[union-attr]
        assert by_pass[name].verdict == "fails-emulation" and by_pass[name].board.fails_as_on_board
        assert "ratio 2.050" in by_pass[name].board.why  # type: ignore[union-attr]
    # the Concat requantizes at ratios <= 1 and the fold leaves no Add: the hypothesis predicts both work,
    # unlike the board, and fix says so
    for name in ("concat-conv", "fold-residual"):
        assert by_pass[name].verdict in ("verified", "predicted")
        assert not by_pass[name].board.fails_as_on_board  # type: ignore[union-attr]
        assert "unlike on the board" in by_pass[name].board.why  # type: ignore[union-attr]


def test_ranking_and_target_runs(fixed: tuple[FixResult, int]) -> None:
    result, opens = fixed
    verdicts = [VERDICTS.index(c.verdict) for c in result.candidates]
    assert verdicts == sorted(verdicts)
    assert sum(c.verdict == "verified" for c in result.candidates) == 2  # --verify-on-target default
    predicted = [c for c in result.candidates if c.verdict in ("verified", "predicted")]
    assert predicted[-1].pass_name == "keep-float"  # the CPU fallback after every int8 fix
    assert result.target_runs["total"] == opens == result.target_runs["localize"] + result.target_runs["verify"]
    assert result.target_runs["verify"] == 2
    assert result.node == "block0_add" and result.ratios == pytest.approx((2.05, 1.06), abs=1e-6)


def test_the_envelope_was_measured_on_the_emulation(fixed: tuple[FixResult, int]) -> None:
    env = fixed[0].envelopes["eltwise"]
    assert env["boundary"] == pytest.approx(32767.5 / 2**14, abs=2e-3)
    assert env["source"].startswith("sweep")


def test_fix_json_is_strict_and_round_trips(fixed: tuple[FixResult, int], tmp_path: Path) -> None:
    result, _ = fixed
    path = tmp_path / "fix.json"
    result.save(path)

    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} in fix.json")

    doc = json.loads(path.read_text(), parse_constant=no_constant)
    assert doc["schema"] == "qprobe.fix/1" and doc["best"]["pass"] == result.candidates[0].pass_name
    assert {"pass", "verdict", "final_cos"} <= set(doc["best"])
    for c in doc["candidates"]:
        assert {"pass", "reason", "changed_nodes", "measures_by_stage", "verdict", "cost"} <= set(c)
    back = FixResult.load(path)
    assert [c.pass_name for c in back.candidates] == [c.pass_name for c in result.candidates]
    assert back.to_json()["candidates"] == result.to_json()["candidates"]
