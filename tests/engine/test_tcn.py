"""The example TCN: bit-exact under ``onnxruntime``, broken at block 0's Add under ``arith16-wrap``.

Oracle: onnxruntime (ort-fused) on every probed tensor, through qprobe's own compare
pipeline (``--probe all``), on the example's packaged input windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from ort_helpers import mismatch, run_engine, run_ort, with_q_outputs

from qprobe.backends.registry import create_backend
from qprobe.compare.run import compare_backends
from qprobe.examples.tcn import packaged_example_dir
from qprobe.model.inputs import load_inputs
from qprobe.model.loader import load_model


@pytest.fixture(scope="module")
def tcn_dir() -> Path:
    return Path(packaged_example_dir())  # shipped with the package: missing files fail the test


def _feeds(tcn_dir: Path, n: int = 128) -> dict[str, np.ndarray]:
    with np.load(tcn_dir / "tcn_inputs.npz") as z:
        return {k: z[k][:n] for k in z.files}


def test_onnxruntime_profile_is_bit_exact_on_every_quantized_tensor(tcn_dir: Path) -> None:
    model = with_q_outputs(onnx.load(tcn_dir / "tcn_int8.onnx"))
    feeds = _feeds(tcn_dir)
    assert mismatch(run_engine(model, feeds, "onnxruntime"), run_ort(model, feeds, fused=True)) == {}


def _compare(tcn_dir: Path, target: str):  # type: ignore[no-untyped-def]
    model = load_model(tcn_dir / "tcn_int8.onnx")
    inputs = load_inputs(model, tcn_dir / "tcn_inputs.npz")
    return compare_backends(model, create_backend("ort-fused"), create_backend(target), inputs, probe="all")


def test_compare_probe_all_shows_every_tensor_exact(tcn_dir: Path) -> None:
    result = _compare(tcn_dir, "engine:onnxruntime")
    assert result.passed
    assert all(r.verdict == "exact" for r in result.rows), [(r.name, r.verdict) for r in result.rows]


def test_arith16_wrap_first_fails_at_block0_add(tcn_dir: Path) -> None:
    result = _compare(tcn_dir, "engine:arith16-wrap")
    first = result.first_failing
    assert first is not None and first.producer == "block0_add"
    before = result.rows[: result.rows.index(first)]
    assert before and all(r.verdict == "exact" for r in before)  # the convs before it stay exact
    assert first.st.cos < 0.9
