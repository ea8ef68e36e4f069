"""Fixtures of the real-target tests: a QDQ model and inputs."""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir
import pytest

from qprobe.model.inputs import InputSet, random_inputs
from qprobe.model.loader import load_model

from models.residual import qdq_residual_model


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return qdq_residual_model(tmp_path_factory.mktemp("qdq"))


@pytest.fixture(scope="session")
def model(model_path: Path) -> ir.Model:
    return load_model(model_path)


@pytest.fixture(scope="session")
def inputs(model: ir.Model) -> InputSet:
    return random_inputs(model, 6, seed=7)
