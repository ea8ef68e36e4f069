"""User mistakes give one line on stderr, exit code 2 and no traceback; compare gates CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.residual import qdq_residual_model


def qprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qprobe", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return qdq_residual_model(tmp_path_factory.mktemp("m"))


def _user_error(res: subprocess.CompletedProcess[str], needle: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert needle in res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr  # one line


def test_bad_inputs_are_user_errors(model: Path, tmp_path: Path) -> None:
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_text("hello")
    wrong_key = tmp_path / "k.npz"
    np.savez(wrong_key, foo=np.zeros((2, 3, 8, 8), np.float32))
    wrong_shape = tmp_path / "s.npz"
    np.savez(wrong_shape, x=np.zeros((2, 3, 4, 4), np.float32))
    cases = [
        (("compare", str(tmp_path / "missing.onnx")), "does not exist"),
        (("compare", str(not_onnx)), "not a readable ONNX model"),
        (("compare", str(model), "--inputs", str(wrong_key)), "no array for model input"),
        (("compare", str(model), "--inputs", str(wrong_shape)), "dimension 2 is 4"),
        (("compare", str(model), "--target", "npu9000"), "unknown backend 'npu9000'"),
        (("compare", str(model), "--ref-opt", "threads"), "is not KEY=VALUE"),
        (("compare", str(model), "--probe", "nope"), "is not in the model"),
        (("inspect",), "missing MODEL"),
    ]
    for args, needle in cases:
        _user_error(qprobe(*args), needle)


def test_compare_exit_code_and_json(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    res = qprobe("compare", str(model), "--ref", "ort", "--target", "ort-fused", "--random", "8", "--json", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "qprobe.comparison/1" and doc["passed"] is True
    assert "PASS" in res.stdout


def test_compare_fails_with_exit_1_on_a_divergent_target() -> None:
    res = qprobe("compare", "--example", "tcn", "--ref", "ort-fused", "--target", "engine:arith16-wrap")
    assert res.returncode == 1, res.stdout + res.stderr  # a failing tensor gates CI
    assert "first failing" in res.stdout and "block0_add" in res.stdout


def test_compare_saves_traces_per_batch(model: Path, tmp_path: Path) -> None:
    from qprobe.tensors import Trace

    res = qprobe("compare", str(model), "--random", "5", "--batch-size", "2", "--save-traces", str(tmp_path / "tr"))
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in (tmp_path / "tr").glob("*.json"))
    roles = ("ref", "ref.plain", "target", "target.plain")  # probed and unprobed runs (op-outputs probes)
    assert names == [f"{role}-{i:06d}.json" for role in roles for i in (0, 2, 4)]
    t = Trace.load(tmp_path / "tr" / "target-000004.json")
    assert t.backend == "ort-fused" and t.first_sample == 4 and t.num_samples == 1
    assert t.session_info["session.qdqisint8allowed"] == "1"
    again = qprobe("compare", str(model), "--ref", f"traces:{tmp_path / 'tr'}", "--target", f"traces:{tmp_path / 'tr'}",
                   "--json", str(tmp_path / "again.json"))
    assert again.returncode == 0, again.stderr
    assert qprobe("compare", str(model), "--random", "5", "--batch-size", "2", "--json",
                  str(tmp_path / "live.json")).returncode == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("again.json", "live.json"))
    assert [r["st"] for r in a["rows"]] == [r["st"] for r in b["rows"]]  # the replay is the same comparison
    assert [r["verdict"] for r in a["deployed"]] == [r["verdict"] for r in b["deployed"]]


def test_unknown_profile_is_a_user_error() -> None:
    _user_error(qprobe("profiles", "npu9000"), "unknown numerics profile 'npu9000'")
    _user_error(qprobe("profiles", "tflite", "--set", "roundng=half_up"), "roundng")
