"""qprobe fix on the command line: user errors exit 2 on one line, no fix exits 1 and writes no model,
--keep-candidates writes every candidate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

BASE = [sys.executable, "-m", "qprobe", "fix", "--example", "tcn"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *args], capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize(("args", "message"), [
    ([], "missing --target"),
    (["--target", "engine:arith16-wrap", "--profile", "no-such.toml"], "--profile 'no-such.toml' does not exist"),
    (["--target", "engine:arith16-wrap", "--emulate", "arith16-wrap", "--profile", "x.toml"],
     "either --profile or --emulate"),
    (["--target", "engine:arith16-wrap", "--emulate", "arith16-wrap", "--passes", "magic"],
     "unknown rewrite pass 'magic'"),
    (["--target", "engine:arith16-wrap", "--emulate", "arith16-wrap", "--node", "block0_ad"],
     "did you mean block0_add"),
    (["--target", "engine:arith16-wrap", "--emulate", "no-such-profile"], "unknown numerics profile"),
])
def test_user_errors_exit_2_on_one_line(args: list[str], message: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_no_working_candidate_exits_1_and_writes_no_model(tmp_path: Path) -> None:
    proc = _run("--target", "engine:arith16-wrap", "--emulate", "arith16-wrap", "--node", "block0_add",
                "--passes", "swap-operands,shared-scale,int16-neighbours", "-o", str(tmp_path / "fixed.onnx"),
                "--json", str(tmp_path / "fix.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not (tmp_path / "fixed.onnx").exists()
    doc = json.loads((tmp_path / "fix.json").read_text())
    assert doc["best"] is None and not doc["passed"]
    assert {c["verdict"] for c in doc["candidates"]} == {"fails-emulation"}
    assert "fails as on the board" in proc.stdout and "target runs used: 0" in proc.stdout


def test_keep_candidates_writes_every_applied_candidate(tmp_path: Path) -> None:
    keep = tmp_path / "cands"
    proc = _run("--target", "engine:arith16-wrap", "--emulate", "arith16-wrap", "--node", "block0_add",
                "--passes", "raise-output-scale,swap-operands", "--keep-candidates", str(keep),
                "-o", str(tmp_path / "fixed.onnx"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in keep.iterdir()) == ["01_raise-output-scale.onnx", "02_swap-operands.onnx"]
    onnx.checker.check_model(onnx.load(str(tmp_path / "fixed.onnx")), full_check=True)
    assert "FIX: raise-output-scale (verified on engine:arith16-wrap)" in proc.stdout
