"""``qprobe localize`` and ``qprobe extract`` end to end, and the repro bundle's own commands.

Oracles: the bundle's repro.py reruns the cut in plain onnxruntime and must reproduce
expected.npz bit for bit; the qprobe command written in the README must reproduce the
failure (exit 1); a cut made by ``extract`` must reproduce the full model's tensors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from qprobe.backends import create_backend
from qprobe.model.inputs import load_inputs
from qprobe.model.loader import load_model
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index


def qprobe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qprobe", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def _readme_command(readme: str) -> list[str]:
    line = next(ln for ln in readme.splitlines() if ln.startswith("qprobe compare model.onnx"))
    return line.split()[1:]


def test_localize_prints_the_table_verdict_and_runs_and_writes_a_bundle(tmp_path: Path) -> None:
    bundle, out_json = tmp_path / "bundle", tmp_path / "div.json"
    res = qprobe("localize", "--example", "tcn", "--target", "engine:arith16-wrap", "--strategy", "bisect",
                 "--bundle", str(bundle), "--json", str(out_json))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "strategy: bisect" in out and "block1_add (Add)" in out  # the per-tensor table
    assert "DIVERGENCE: block0_add (Add) introduces the error" in out
    assert "operand-to-output scale ratios: 2.050, 1.060" in out
    assert "target runs used: 7 (bisect budget ceil(log2 N) + 2 = 7)" in out
    assert json.loads(out_json.read_text())["culprit"]["op"] == "block0_add"
    files = {p.name for p in bundle.iterdir()}
    assert files == {"model.onnx", "inputs.npz", "expected.npz", "observed.npz", "metrics.json", "README.md",
                     "repro.py", "divergence.json"}
    readme = (bundle / "README.md").read_text()
    for needle in ("block0_add", "| `input_proj_out_QuantizeLinear_Output` | input | 0.031372562 | 2 | int8 | 2.0500 |",
                   "python repro.py", "qprobe compare model.onnx --inputs inputs.npz --ref ort-fused "
                   "--target engine:arith16-wrap --probe outputs"):
        assert needle in readme
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["quantization"][0]["scale_ratios"] == [pytest_approx(2.05), pytest_approx(1.06)]
    assert metrics["isolated"][0]["verdict"] == "fail"
    plain = subprocess.run([sys.executable, "repro.py"], cwd=bundle, capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0 and "onnxruntime matches expected.npz" in plain.stdout, plain.stdout + plain.stderr
    again = qprobe(*_readme_command(readme), cwd=bundle)
    assert again.returncode == 1 and "block0_relu_out_QuantizeLinear_Output" in again.stdout  # the failure reproduces


def pytest_approx(v: float) -> object:
    import pytest

    return pytest.approx(v, abs=0.01)


def test_extract_cuts_at_int8_codes_and_the_cut_reproduces_the_full_model(tmp_path: Path,
                                                                          tcn_files: tuple[Path, Path]) -> None:
    model_path, inputs_path = tcn_files
    cut_path = tmp_path / "cut.onnx"
    res = qprobe("extract", str(model_path), "--inputs", "input_proj_out_DequantizeLinear_Output,block0_slice_out",
                 "--outputs", "block1_relu_out", "-o", str(cut_path))
    assert res.returncode == 0, res.stderr
    assert "input_proj_out_DequantizeLinear_Output -> input_proj_out_QuantizeLinear_Output" in res.stdout
    cut = onnx.load(str(cut_path))
    onnx.checker.check_model(cut, full_check=True)
    ins, outs = [i.name for i in cut.graph.input], [o.name for o in cut.graph.output]
    assert ins == ["input_proj_out_QuantizeLinear_Output", "block0_slice_out_QuantizeLinear_Output"]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT8 for i in [*cut.graph.input, *cut.graph.output])
    assert {n.op_type for n in cut.graph.node if set(n.input) & set(ins)} == {"DequantizeLinear"}
    model = load_model(model_path)
    samples = load_inputs(model, inputs_path)
    plan = plan_probes(model, build_quant_index(model), ins + outs)
    full = create_backend("ort").open(apply_probe_plan(model, plan)).run({k: v[:8] for k, v in samples.arrays.items()})
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # like the "ort" full-model run
    sess = ort.InferenceSession(str(cut_path), so, providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(outs, {t: full[t][i : i + 1] for t in ins})[0] for i in range(8)])
    np.testing.assert_array_equal(got, full[outs[0]])


def test_extract_bundle_with_a_target(tmp_path: Path, tcn_files: tuple[Path, Path]) -> None:
    model_path, inputs_path = tcn_files
    bundle = tmp_path / "b"
    res = qprobe("extract", str(model_path), "--inputs", "input_proj_out_QuantizeLinear_Output,"
                 "block0_slice_out_QuantizeLinear_Output", "--outputs", "block0_relu_out_QuantizeLinear_Output",
                 "--bundle", str(bundle), "--target", "engine:arith16-wrap", "--samples", str(inputs_path))
    assert res.returncode == 0, res.stderr
    assert (bundle / "observed.npz").exists() and "block0_add" in (bundle / "README.md").read_text()
    plain = subprocess.run([sys.executable, "repro.py"], cwd=bundle, capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_user_errors_are_one_line(tcn_files: tuple[Path, Path]) -> None:
    for args, needle in [
        (("localize", "--example", "tcn"), "missing --target"),
        (("localize", "--example", "tcn", "--target", "ort", "--strategy", "guess"), "unknown strategy"),
        (("extract", str(tcn_files[0]), "--inputs", "window", "--outputs", "nope", "-o", "x.onnx"), "not in the model"),
        (("extract", str(tcn_files[0]), "--inputs", "block1_conv_out_QuantizeLinear_Output", "--outputs",
          "log_conc", "-o", "x.onnx"), "depends on graph input"),
    ]:
        res = qprobe(*args)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
