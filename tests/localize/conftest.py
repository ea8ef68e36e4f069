"""Make the localize test helpers importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest


@pytest.fixture(scope="session")
def tcn_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model, inputs) of the bundled TCN example."""
    from qprobe.examples.tcn import packaged_example_dir

    d = packaged_example_dir()
    return d / "tcn_int8.onnx", d / "tcn_inputs.npz"
