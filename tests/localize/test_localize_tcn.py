"""The example TCN on engine:arith16-wrap: every strategy names block 0's residual Add.

Oracle: the motivating case. The arith16-wrap profile wraps the affine Add's 16-bit
coefficients, which only the Add with an operand-to-output scale ratio >= 2 (block0_add,
2.05) needs; every other op is computed like onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qprobe.backends import create_backend
from qprobe.localize import bisect_budget, localize
from qprobe.model.inputs import load_inputs
from qprobe.model.loader import load_model

LATER = [f"block{i}_{k}" for i in range(1, 6) for k in ("conv", "slice", "add")] + [
    "last_step", "flatten", "head_gemm1", "head_gemm2"]


@pytest.mark.parametrize("strategy", ["auto", "probe-all", "isolate", "bisect"])
def test_every_strategy_names_block0_add_and_the_later_ops_are_carriers(tcn_files: tuple[Path, Path],
                                                                        strategy: str) -> None:
    model = load_model(tcn_files[0])
    inputs = load_inputs(model, tcn_files[1])
    loc = localize(model, create_backend("ort-fused"), create_backend("engine:arith16-wrap"), inputs, strategy=strategy)
    d = loc.divergence
    assert d.culprit is not None and (d.culprit.op, d.culprit.op_type,
                                      d.culprit.role) == ("block0_add", "Add", "culprit")
    assert d.culprit.isolated and d.culprit.isolated[0].failed
    assert [r.verdict for r in d.culprit_inputs] == ["exact", "exact"]  # both operands match on the target
    assert list(d.carriers()) == LATER and d.introducers() == ()
    assert d.final_outputs and all(r.failed for r in d.final_outputs)
    if strategy == "bisect":
        assert d.budget == bisect_budget(24) == 7 and d.target_runs <= 7
    else:
        assert d.target_runs == 3
    if strategy == "auto":
        assert d.strategy == "probe-all" and "any number of outputs per run" in d.reason
    assert "block0_add" in loc.isolated


def test_replayed_board_tensors_give_an_unconfirmed_candidate(tcn_files: tuple[Path, Path], tmp_path: Path) -> None:
    """A recording (as a board's dump would be) cannot run cuts: one replay, the first failing op."""
    import numpy as np

    from qprobe.model.probe import apply_probe_plan, plan_probes
    from qprobe.model.quant import build_quant_index

    model = load_model(tcn_files[0])
    inputs = load_inputs(model, tcn_files[1])
    plan = plan_probes(model, build_quant_index(model), "op-outputs")
    dump = create_backend("engine:arith16-wrap").open(apply_probe_plan(model, plan)).run(inputs.arrays)
    np.savez(tmp_path / "board.npz", **inputs.arrays, **dump)
    d = localize(model, create_backend("ort-fused"), create_backend(f"recorded:{tmp_path / 'board.npz'}"),
                 None).divergence
    assert d.strategy == "probe-all" and all(r.kind == "model" for r in d.runs)
    assert d.culprit is not None and (d.culprit.op, d.culprit.role) == ("block0_add", "unconfirmed")
    assert any("cannot run cut models" in n for n in d.notes)
