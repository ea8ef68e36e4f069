"""`qprobe compare` on an ST val_io.npz reproduces the X-cross metrics ST computes from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from targets_support import initializer, make_val_io, same_6_digits, st_oracle

from qprobe.backends import create_backend
from qprobe.backends.recorded import RecordedBackend
from qprobe.backends.st import read_val_io, st_xcross_metrics
from qprobe.compare import Comparison, compare_backends
from qprobe.model.quant import build_quant_index

DDOF_FREE = ("rmse", "mae", "l2r", "mean", "cos")
DDOF_1 = ("std", "nse")


@pytest.fixture(scope="module")
def st_case(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> tuple[Path, dict[str, float]]:
    """A val_io.npz whose board side is biased low by 2 codes with ±1 code of jitter, and
    ST's numbers for it computed in plain numpy from the file and the model's initializers."""
    x = np.random.default_rng(5).uniform(0, 1, (10, 3, 8, 8)).astype(np.float32)
    d = tmp_path_factory.mktemp("st")
    p = make_val_io(model_path, x, d / "network_val_io.npz", bias=2, noise=1, seed=2)
    s, z = float(initializer(model_path, "y_scale")), int(initializer(model_path, "y_zero_point"))
    with np.load(p) as f:
        want = st_oracle(f["m_outputs_1"], f["c_outputs_1"], s, z)
    info = {"validation": {"val_metrics": [{"desc": "X-cross #1", **want}]}}
    (d / "network_c_info.json").write_text(json.dumps(info))
    return p, want


def _compare(model: ir.Model, p: Path) -> Comparison:
    ref = create_backend(f"recorded:{p}", {"side": "m"})
    tgt = create_backend(f"recorded:{p}")
    assert isinstance(ref, RecordedBackend) and isinstance(tgt, RecordedBackend)
    ref.bind(model)  # TODO(compare): let compare_backends bind recorded backends to the model
    tgt.bind(model)
    return compare_backends(model, ref, tgt, None, probe="outputs")


def test_compare_reproduces_st_xcross_to_6_digits(model: ir.Model, st_case: tuple[Path, dict[str, float]]) -> None:
    p, want = st_case
    cmp = _compare(model, p)
    row = cmp.row("y")
    assert cmp.num_samples == 10 and cmp.inputs.startswith("recorded by recorded:")
    for k in (*DDOF_FREE, *DDOF_1):
        assert same_6_digits(getattr(row.st, k), want[k]), (k, getattr(row.st, k), want[k])
    assert row.st.mean > 0 and row.failed  # biased low: ST's positive mean
    assert "X-cross #1: rmse=" in cmp.session_info["target"]["st.reported"]  # type: ignore[index]


def test_st_xcross_metrics_reproduce_all_seven_values(model: ir.Model, st_case: tuple[Path, dict[str, float]]) -> None:
    p, want = st_case
    (got,) = st_xcross_metrics(read_val_io(p), [build_quant_index(model).quant_of("y")])
    for k in (*DDOF_FREE, *DDOF_1):
        assert same_6_digits(getattr(got, k), want[k]), (k, getattr(got, k), want[k])


def test_cli_compare_on_an_st_file(model_path: Path, st_case: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    p, want = st_case
    out = tmp_path / "cmp.json"
    res = subprocess.run(
        [sys.executable, "-m", "qprobe", "compare", str(model_path), "--ref", f"recorded:{p}", "--ref-opt", "side=m",
         "--target", f"recorded:{p}", "--probe", "outputs", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 1, res.stderr  # the biased target fails the default tolerance
    row = next(r for r in json.loads(out.read_text())["rows"] if r["name"] == "y")
    for k in (*DDOF_FREE, *DDOF_1):
        assert same_6_digits(row["st"][k], want[k]), k
