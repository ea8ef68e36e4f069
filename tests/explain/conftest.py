"""Fixtures for explain's tests: the TCN example and two other models with their inputs."""

from __future__ import annotations

from collections.abc import Iterator

import onnx_ir as ir
import pytest
from explain_models import concat_model, random_inputs, residual_model

from qprobe.examples.tcn import packaged_example_dir
from qprobe.model.inputs import InputSet, load_inputs
from qprobe.model.loader import load_model


@pytest.fixture(scope="session")
def tcn() -> tuple[ir.Model, InputSet]:
    d = packaged_example_dir()
    model = load_model(d / "tcn_int8.onnx")
    return model, load_inputs(model, d / "tcn_inputs.npz")


@pytest.fixture(scope="session")
def other_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[ir.Model, InputSet]]]:
    d = tmp_path_factory.mktemp("explain_models")
    concat = load_model(concat_model(d))
    residual = load_model(residual_model(d))
    yield {
        "concat": (concat, InputSet({"x": random_inputs((3, 32), 32, 5)}, "normal(0, 1), seed 5")),
        "residual": (residual, InputSet({"x": random_inputs((3, 8, 8), 32, 5)}, "normal(0, 1), seed 5")),
    }
