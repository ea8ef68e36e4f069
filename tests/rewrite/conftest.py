"""Fixtures of the rewrite tests: the example TCN, its data, and contexts for its block-0 Add
(with the closed-form envelope of ``rewrite_support``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rewrite_support import CONCAT, ENVELOPE, ort_run

from qprobe.model.loader import load_model
from qprobe.rewrite import RatioEnvelope, RewriteContext


@pytest.fixture(scope="session")
def tcn_dir() -> Path:
    from qprobe.examples.tcn import packaged_example_dir

    return packaged_example_dir()


@pytest.fixture(scope="session")
def tcn(tcn_dir: Path) -> ir.Model:
    return load_model(tcn_dir / "tcn_int8.onnx")


@pytest.fixture(scope="session")
def windows(tcn_dir: Path) -> dict[str, np.ndarray]:
    with np.load(tcn_dir / "tcn_inputs.npz") as z:
        return {"window": z["window"]}


@pytest.fixture(scope="session")
def values(tcn_dir: Path, windows: dict[str, np.ndarray]) -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
    """Float tensors of the original TCN on the data, read with onnxruntime directly."""
    proto = onnx.load(str(tcn_dir / "tcn_int8.onnx"))

    def read(names: Sequence[str]) -> dict[str, np.ndarray]:
        return ort_run(proto, windows, list(names))

    return read


@pytest.fixture(scope="session")
def make_ctx(tcn: ir.Model, tcn_dir: Path, values: Callable[[Sequence[str]], dict[str, np.ndarray]]
             ) -> Callable[..., RewriteContext]:
    def make(node: str = "block0_add", model: ir.Model | None = None, envelope: RatioEnvelope = ENVELOPE,
             with_float: bool = True) -> RewriteContext:
        return RewriteContext(model or tcn, node, envelope, {"concat": CONCAT}, values if model is None else None,
                              tcn_dir / "tcn_float.onnx" if with_float else None,
                              tcn_dir / "tcn_calibration.npz" if with_float else None)

    return make


@pytest.fixture(scope="session")
def applied(make_ctx: Callable[..., RewriteContext]) -> dict[str, object]:
    """Every pass applied once to the TCN's block0_add (ratios 2.05 and 1.06, outside below 2.0)."""
    from qprobe.rewrite import PASSES

    ctx = make_ctx()
    return {name: p.apply(ctx) for name, p in PASSES.items()}
