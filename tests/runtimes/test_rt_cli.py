"""``qprobe compare`` and ``qprobe localize`` with OpenVINO and onnxruntime providers as targets.

Oracles: the float64 definition for which op is wrong (OpenVINO's Softmax is exact, ort-fused's
QLinearSoftmax is not; OpenVINO's input QuantizeLinear rounds a near-tie of the bundled TCN's
input the wrong way), and the runs themselves for the probe effect (rerun without probes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.runtimes import Built

pytest.importorskip("openvino", reason="openvino is not installed (pip install qprobe[openvino])")


def qprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qprobe", *args], capture_output=True, text=True, timeout=600)


def _inputs(b: Built, tmp: Path) -> str:
    path = tmp / f"{b.int8.stem}_inputs.npz"
    np.savez(path, **b.inputs)
    return str(path)


def test_compare_against_openvino_probes_everything_and_reports_the_probe_effect(
    built: dict[str, Built], tmp_path: Path
) -> None:
    b, out = built["silu"], tmp_path / "cmp.json"
    res = qprobe("compare", str(b.int8), "--inputs", _inputs(b, tmp_path), "--ref", "ort-fused",
                 "--target", "openvino", "--probe", "all", "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert "probe effect on openvino" in res.stdout
    doc = json.loads(out.read_text())
    effect = next(e for e in doc["probe_effects"] if e["backend"] == "openvino")
    assert effect["checked"] and effect["changed_outputs"] == []
    info = doc["session_info"]["target"]
    assert info["inference_precision"] == "f32"
    fmap = json.loads(info["fusion_map"])
    assert any({"sig2", "mul2"} <= set(k["nodes"]) for k in fmap["kernels"])
    s2 = next(r for r in doc["rows"] if r["name"] == "s2_QuantizeLinear_Output")
    assert s2["verdict"] == "pass" and s2["lsb"]["mean_delta_lsb"] < 0  # openvino high at the 0.5 ties


def test_localize_with_openvino_names_the_softmax_that_onnxruntime_fused_computes_low(
    built: dict[str, Built], tmp_path: Path
) -> None:
    b, out = built["attention"], tmp_path / "loc.json"
    inputs = _inputs(b, tmp_path)
    res = qprobe("localize", str(b.int8), "--inputs", inputs, "--ref", "ort-fused", "--target", "openvino",
                 "--tol", "bias=0.05", "--json", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["found"] and doc["culprit"]["op"] == "softmax"
    # against the unfused reference (the ONNX definition) openvino is exact
    exact = qprobe("compare", str(b.int8), "--inputs", inputs, "--ref", "ort", "--target", "openvino", "--probe", "all")
    assert exact.returncode == 0 and "10 exact" in exact.stdout, exact.stdout


def test_localize_on_the_bundled_tcn_sees_that_probing_changes_openvino_and_falls_back_to_cuts(tmp_path: Path) -> None:
    out = tmp_path / "loc.json"
    res = qprobe("localize", "--example", "tcn", "--ref", "ort-fused", "--target", "openvino",
                 "--tol", "max=0", "--json", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert any("probing changed the target's final outputs" in n for n in doc["notes"])
    assert doc["found"] and doc["culprit"]["op"] == "window_QuantizeLinear"


def test_compare_with_an_onnxruntime_provider_as_target(built: dict[str, Built], tmp_path: Path) -> None:
    b = built["residual"]
    res = qprobe("compare", str(b.int8), "--inputs", _inputs(b, tmp_path), "--ref", "ort-fused",
                 "--target", "ort-ep:CPUExecutionProvider", "--target-opt", "session.qdqisint8allowed=1")
    assert res.returncode == 0, res.stdout + res.stderr
    bad = qprobe("compare", str(b.int8), "--target", "ort-ep:NoSuchExecutionProvider")
    assert bad.returncode == 2 and "available: " in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
