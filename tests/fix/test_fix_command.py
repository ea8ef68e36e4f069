"""qprobe fix through a ``command:`` target that emulates an eltwise defect by scale ratio.

The target (``ratio_defect_target.py``) wraps the 16-bit coefficient of every Add/Concat
operand whose ratio is >= 2, whatever the node is called; fix localizes the Add on it, predicts
candidates on an equivalent profile (``--profile``: arith16-wrap, the same law in qprobe's
engine) and verifies the best two on the target. Target runs are counted by the script itself
(one line per run, the disk cache off, so every open is one run).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from fix_support import cos
from rewrite_support import ort_run

SCRIPT = Path(__file__).parent / "ratio_defect_target.py"
EQUIVALENT = ('name = "ratio-wrap"\nbase = "arith16-wrap"\ndescription = "16-bit operand coefficients that wrap from '
              'ratio 2"\n')


def _template() -> str:
    return f"command:{shlex.quote(sys.executable)} {shlex.quote(str(SCRIPT))} {{model}} {{inputs}} {{outputs}}"


def _fix(tmp: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], int]:
    count = tmp / "runs.txt"
    args = [sys.executable, "-m", "qprobe", "fix", "--example", "tcn", "--ref", "ort-fused", "--target", _template(),
            "--target-opt", "cache=off", "--target-opt", f"workdir={tmp / 'work'}", "--verify-on-target", "2",
            "-o", str(tmp / "fixed.onnx"), "--json", str(tmp / "fix.json"), *extra]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "QPROBE_TARGET_COUNT_FILE": str(count)})
    runs = len(count.read_text().splitlines()) if count.exists() else 0
    return proc, runs


def _check(tmp: Path, proc: subprocess.CompletedProcess[str], runs: int, tcn_dir: Path) -> dict[str, object]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp / "fix.json").read_text())
    assert doc["node"] == "block0_add" and doc["best"]["verdict"] == "verified"
    assert doc["target_runs"]["total"] == runs <= 12
    assert f"target runs used: {runs}" in proc.stdout
    # the written model, run once more on the target by the test: right where the original was wrong
    import onnx

    feeds = {"window": np.load(tcn_dir / "tcn_inputs.npz")["window"]}
    reference = ort_run(onnx.load(str(tcn_dir / "tcn_int8.onnx")), feeds, fused=True)["log_conc"]
    np.savez(tmp / "in.npz", **feeds)
    for model, ok in ((tmp / "fixed.onnx", True), (tcn_dir / "tcn_int8.onnx", False)):
        subprocess.run([sys.executable, str(SCRIPT), str(model), str(tmp / "in.npz"), str(tmp / "out.npz")],
                       check=True, capture_output=True, timeout=600)
        assert (cos(reference, np.load(tmp / "out.npz")["log_conc"]) >= 0.999) == ok
    return doc


def test_fix_through_a_command_target_with_an_equivalent_profile(tmp_path: Path, tcn_dir: Path) -> None:
    (tmp_path / "equivalent.toml").write_text(EQUIVALENT)
    proc, runs = _fix(tmp_path, "--profile", str(tmp_path / "equivalent.toml"))
    doc = _check(tmp_path, proc, runs, tcn_dir)
    assert doc["target_runs"] == {"localize": 3, "explain": 0, "verify": 2, "total": 5, "cached": 0}


def test_a_rerun_takes_every_target_run_from_the_cache_and_says_so(tmp_path: Path) -> None:
    """With the command cache on, the same fix again runs nothing on the board; the JSON and the
    terminal count the runs served from the cache."""
    (tmp_path / "equivalent.toml").write_text(EQUIVALENT)
    count = tmp_path / "runs.txt"
    args = [sys.executable, "-m", "qprobe", "fix", "--example", "tcn", "--ref", "ort-fused", "--target", _template(),
            "--target-opt", f"cache={tmp_path / 'cache'}", "--target-opt", f"workdir={tmp_path / 'work'}",
            "--verify-on-target", "2", "--profile", str(tmp_path / "equivalent.toml"), "--force",
            "-o", str(tmp_path / "fixed.onnx"), "--json", str(tmp_path / "fix.json")]
    env = {**os.environ, "QPROBE_TARGET_COUNT_FILE": str(count)}
    first = subprocess.run(args, capture_output=True, text=True, timeout=1800, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    ran = len(count.read_text().splitlines())
    second = subprocess.run(args, capture_output=True, text=True, timeout=1800, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(count.read_text().splitlines()) == ran  # nothing ran on the board the second time
    runs = json.loads((tmp_path / "fix.json").read_text())["target_runs"]
    assert runs["cached"] == runs["total"] == ran
    assert f"0 ran, {ran} from the cache" in second.stdout


def _has_explain() -> bool:
    try:
        import qprobe.explain  # noqa: F401
    except ImportError:
        return False
    return True


def test_fix_through_a_command_target_from_no_profile(tmp_path: Path, tcn_dir: Path) -> None:
    """Without a profile fix runs explain first; where explain is not installed it says what to pass,
    before any target run."""
    proc, runs = _fix(tmp_path)
    if not _has_explain():
        assert proc.returncode == 2 and "pass --profile fitted.toml" in proc.stderr, proc.stdout + proc.stderr
        assert runs == 0 and "Traceback" not in proc.stderr
        return
    doc = _check(tmp_path, proc, runs, tcn_dir)
    assert doc["target_runs"]["explain"] >= 1  # type: ignore[index]
