"""compare through a command target that mutates one node; the disk cache makes reruns free."""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir
import pytest
from targets_support import IO, MUTATING, py

from qprobe.backends import create_backend
from qprobe.backends.command import CommandBackend, CommandRunError
from qprobe.compare import compare_backends
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan
from qprobe.tensors import ProbePlan

TEMPLATE = py(MUTATING, IO, "--node add --factor 0.5")


def _target(tmp: Path) -> CommandBackend:
    b = create_backend(f"command:{TEMPLATE}", {"cache": str(tmp / "cache"), "workdir": str(tmp / "runs")})
    assert isinstance(b, CommandBackend)
    return b


@pytest.fixture
def count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "runs.txt"
    monkeypatch.setenv("QPROBE_TARGET_COUNT_FILE", str(p))
    return p


def _lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_compare_shows_the_mutated_add_and_reruns_from_cache(
    tmp_path: Path, count: Path, model: ir.Model, inputs: InputSet
) -> None:
    first = _target(tmp_path)
    cmp = compare_backends(model, create_backend("ort"), first, inputs, probe="op-outputs")
    bad = cmp.first_failing
    assert bad is not None and bad.producer == "add" and bad.st.mean > 0  # halved: biased low
    assert cmp.row("c2_QuantizeLinear_Output").verdict == "exact"  # the Add's operands are fine
    assert (first.runs_executed, first.runs_cached) == (2, 0)  # probed + unprobed model
    again = _target(tmp_path)
    cmp2 = compare_backends(model, create_backend("ort"), again, inputs, probe="op-outputs")
    assert (again.runs_executed, again.runs_cached) == (0, 2) and _lines(count) == 2
    assert [r.st for r in cmp2.rows] == [r.st for r in cmp.rows]


def test_an_interrupted_sequence_resumes_without_rerunning(
    tmp_path: Path, count: Path, model: ir.Model, inputs: InputSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three probe sets, as a localization would send; the board dies before the third."""
    probes = ["c1_QuantizeLinear_Output", "c2_QuantizeLinear_Output", "r_QuantizeLinear_Output"]
    models = [apply_probe_plan(model, ProbePlan("explicit", (t, "y"), (t,))) for t in probes]
    monkeypatch.setenv("QPROBE_TARGET_MAX_RUNS", "2")
    b = _target(tmp_path)
    b.open(models[0]).run(inputs.arrays)
    b.open(models[1]).run(inputs.arrays)
    with pytest.raises(CommandRunError, match="exited with code 75") as info:
        b.open(models[2]).run(inputs.arrays)
    assert "simulated interruption after 2 runs" in info.value.stderr
    monkeypatch.delenv("QPROBE_TARGET_MAX_RUNS")
    resumed = _target(tmp_path)
    outs = [resumed.open(m).run(inputs.arrays) for m in models]
    assert (resumed.runs_executed, resumed.runs_cached) == (1, 2) and _lines(count) == 3
    assert all(probes[i] in o for i, o in enumerate(outs))
