"""A repro bundle is written completely or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qprobe.compare.cut import CutRun
from qprobe.model.loader import load_model
from qprobe.report import bundle
from qprobe.report.bundle import Repro, write_bundle

from models.residual import qdq_residual_model


def _repro(tmp: Path) -> Repro:
    m = load_model(qdq_residual_model(tmp))
    x = {"x": np.zeros((2, 3, 8, 8), np.float32)}
    cut = CutRun(model=m, inputs=x, expected={"y": np.zeros((2, 3), np.float32)}, observed=None)
    return Repro(title="test", cut=cut, ref="ort", target=None, source="model.onnx")


def test_failure_leaves_no_partial_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repro = _repro(tmp_path)

    def broken(*args: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundle, "readme", broken)
    out = tmp_path / "out" / "bundle"
    with pytest.raises(RuntimeError, match="disk full"):
        write_bundle(out, repro)
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no staging folder left either


def test_complete_bundle(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    files = write_bundle(out, _repro(tmp_path))
    assert {f.name for f in files} == {"model.onnx", "inputs.npz", "expected.npz", "metrics.json", "repro.py",
                                       "README.md"}
    assert all(f.exists() for f in files)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

