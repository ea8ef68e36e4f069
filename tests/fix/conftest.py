"""Fixtures of the fix tests: the example TCN, its data and ground truth, a counting target."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "rewrite"))

from qprobe.model.inputs import InputSet, load_inputs
from qprobe.model.loader import load_model


@pytest.fixture(scope="session")
def tcn_dir() -> Path:
    from qprobe.examples.tcn import packaged_example_dir

    return packaged_example_dir()


@pytest.fixture(scope="session")
def tcn(tcn_dir: Path) -> ir.Model:
    return load_model(tcn_dir / "tcn_int8.onnx")


@pytest.fixture(scope="session")
def tcn_inputs(tcn: ir.Model, tcn_dir: Path) -> InputSet:
    return load_inputs(tcn, tcn_dir / "tcn_inputs.npz")


@pytest.fixture(scope="session")
def truth(tcn_dir: Path) -> dict[str, np.ndarray]:
    with np.load(tcn_dir / "tcn_truth.npz") as z:
        return {k: z[k] for k in z.files}
