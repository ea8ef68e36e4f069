"""Without --profile, fix asks explain (CONTRACTS.md) for the fitted profile and the envelope.

A stand-in ``qprobe.explain`` (the contract's fields, its own target runs) checks the seam:
the fitted profile becomes the emulation, the explanation's envelope is used as given, and its
target runs are counted with fix's own.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import onnx_ir as ir
import pytest
from fix_support import Counting

from qprobe.backends import create_backend
from qprobe.errors import QprobeError
from qprobe.fix import fix
from qprobe.model.inputs import InputSet

FITTED = 'name = "fitted"\nbase = "arith16-wrap"\ndescription = "stand-in fit"\n'


def _fake_explain(runs: int) -> types.ModuleType:
    mod = types.ModuleType("qprobe.explain")

    def explain(model: ir.Model, ref: Any, target: Any, inputs: Any, *, node: str | None = None, **_: Any) -> Any:
        for _ in range(runs):
            target.open(model).close()
        env = types.SimpleNamespace(op_class="eltwise", safe=((0.0, 1.5),), boundary=1.5,
                                    statement="Add is exact for every operand ratio below 1.5, wrong at and above it")
        return types.SimpleNamespace(explained=True, node=node, profile=FITTED, envelope=env, target_runs=runs)

    mod.explain = explain  # type: ignore[attr-defined]
    return mod


def test_fix_uses_the_explanation(monkeypatch: pytest.MonkeyPatch, tcn: ir.Model, tcn_inputs: InputSet) -> None:
    monkeypatch.setitem(sys.modules, "qprobe.explain", _fake_explain(4))
    target = Counting(create_backend("engine:arith16-wrap"))
    result = fix(tcn, create_backend("ort-fused"), target, tcn_inputs, node="block0_add",
                 passes=["raise-output-scale", "swap-operands"])
    assert result.emulation == "engine:fitted"
    assert result.envelopes["eltwise"]["source"] == "explain"
    assert result.envelopes["eltwise"]["boundary"] == 1.5
    assert result.target_runs == {"localize": 0, "explain": 4, "verify": 1, "total": 5, "cached": 0}
    assert target.opens == 5
    best = result.best
    assert best is not None and best.pass_name == "raise-output-scale" and best.verdict == "verified"
    assert "1.455" in best.verdict_reason or "1.455" in (best.rewrite.reason if best.rewrite else "")  # aim 1.5 * 0.97


def test_without_explain_fix_asks_for_a_profile(monkeypatch: pytest.MonkeyPatch, tcn: ir.Model,
                                                tcn_inputs: InputSet) -> None:
    monkeypatch.setitem(sys.modules, "qprobe.explain", None)  # as if explain were not installed
    target = Counting(create_backend("engine:arith16-wrap"))
    with pytest.raises(QprobeError, match="pass --profile fitted.toml"):
        fix(tcn, create_backend("ort-fused"), target, tcn_inputs, node="block0_add")
    assert target.opens == 0
