"""Make the localize test helpers importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest


@pytest.fixture(scope="session")
def tcn_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model, inputs) of the bundled TCN example; built into a temporary folder if not packaged."""
    from qprobe.examples.tcn import build_tcn_example, packaged_example_dir

    d = packaged_example_dir()
    if not (d / "tcn_int8.onnx").exists():
        d = tmp_path_factory.mktemp("tcn")
        build_tcn_example(d, n_inputs=64)
    return d / "tcn_int8.onnx", d / "tcn_inputs.npz"
