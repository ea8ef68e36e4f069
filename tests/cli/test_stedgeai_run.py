"""``qprobe stedgeai-run``: relative paths resolved before the tools run in the work directory, and
``--help`` lists the adapter's options."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from qprobe.cli.main import run
from qprobe.examples.tcn import packaged_example_dir

FAKE = Path(__file__).resolve().parents[1] / "targets" / "fake_stedgeai.py"


def test_relative_paths_land_where_they_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(packaged_example_dir() / "tcn_int8.onnx", tmp_path / "m.onnx")
    with np.load(packaged_example_dir() / "tcn_inputs.npz") as z:
        np.savez(tmp_path / "s.npz", window=z["window"][:4])
    monkeypatch.chdir(tmp_path)
    code = run(["stedgeai-run", "--model", "m.onnx", "--inputs", "s.npz", "--outputs", "wd/out.npz", "--workdir", "wd",
                "--stedgeai", f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "wd" / "out.npz").is_file() and (tmp_path / "wd" / "st_ai_output").is_dir()
    assert not (tmp_path / "wd" / "wd").exists()
    with np.load(tmp_path / "wd" / "out.npz") as z:
        assert z["log_conc"].shape == (4, 1)


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["stedgeai-run", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--model", "--inputs", "--outputs", "--workdir", "--stedgeai", "--loader", "--desc"):
        assert option in out
