"""``qprobe explain`` end to end: the table, the sentence, the verdict, the files; exit 0 / 1 / 2.

Oracles: the written profile loads as ``engine:FILE.toml`` and ``qprobe compare`` of the
target against it passes on every tensor; the JSON document's schema and verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from explain_support import target_spec

pytestmark = pytest.mark.slow


def qprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qprobe", *args], capture_output=True, text=True, timeout=1800)


def test_explain_the_example_writes_a_profile_that_compare_accepts(tmp_path: Path) -> None:
    prof, doc = tmp_path / "fitted.toml", tmp_path / "explanation.json"
    res = qprobe("explain", "--example", "tcn", "--target", "engine:arith16-wrap", "--profile-out", str(prof),
                 "--json", str(doc))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "EXPLAINED" in out and "block0_add" in out
    assert "arith16-wrap (as is)" in out and "100.000" in out
    assert "scaled by -1.95 instead of 2.05" in out
    assert "target runs used: 4" in out
    d = json.loads(doc.read_text())
    assert d["schema"] == "qprobe.explanation/1" and d["explained"] is True and d["profile"] == prof.read_text()
    res = qprobe("compare", "--example", "tcn", "--ref", "engine:arith16-wrap", "--target", f"engine:{prof}",
                 "--probe", "all", "--tol", "cos=0.999")
    assert res.returncode == 0, res.stdout


def test_an_unexplained_op_exits_one_and_prints_the_checklist() -> None:
    res = qprobe("explain", "--example", "tcn", "--target", target_spec("target_bitflips.py"),
                 "--target-opt", "cache=off", "--target-opt", "cost=0.1", "--node", "block0_add")
    assert res.returncode == 1, res.stderr
    assert "UNEXPLAINED" in res.stdout and "memory, DMA, cache" in res.stdout
    assert "rule out first" in res.stdout and "RIF/RISAF" in res.stdout


def test_user_errors_exit_two_without_a_traceback() -> None:
    res = qprobe("explain", "--example", "tcn", "--target", "engine:arith16-wrap", "--node", "no_such_op")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no_such_op" in res.stderr and "block0_add" in res.stderr
    res = qprobe("explain", "--example", "tcn")
    assert res.returncode == 2 and "--target" in res.stderr
