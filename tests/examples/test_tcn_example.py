"""The bundled TCN example: what it ships, that it runs, that it forecasts, that it is reproducible.

The trainer is tools/tcn_example (source checkout only); the package ships its files and a
loader. Builds (trains) the example three times (15-40 s each); the two seed-0 builds are made once
per test run, whichever xdist worker asks first.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from qprobe.errors import ModelError, QprobeError
from qprobe.examples.tcn import FILES, PACKAGED_INPUTS, TcnExample, copy_example, packaged_example_dir
from shared_build import built_once

from tcn_example import build as tcn
from tcn_example.build import block0_add_ratios, build_tcn_example, environment, run_model
from tcn_example.gas_signal import example_data, regression_metrics, simulate_gas_series

PACKAGED = packaged_example_dir()


def _build(root: Path, name: str, seed: int = 0) -> TcnExample:
    out = root / name
    out.mkdir()
    return build_tcn_example(out, seed=seed, n_inputs=PACKAGED_INPUTS)


def _built_once(factory: pytest.TempPathFactory, name: str) -> TcnExample:
    """A build with seed 0, trained once per test run: an xdist worker tears module fixtures down
    whenever its queue runs dry, and both workers may ask for it."""
    def build(out: Path) -> None:
        (out / "example.pickle").write_bytes(pickle.dumps(_build(out.parent, out.name)))

    example = pickle.loads((built_once(factory, f"tcn-example-{name}", build) / "example.pickle").read_bytes())
    assert isinstance(example, TcnExample)
    return example


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> TcnExample:
    return _built_once(tmp_path_factory, "fresh")


@pytest.fixture(scope="module")
def fresh_again(tmp_path_factory: pytest.TempPathFactory) -> TcnExample:
    return _built_once(tmp_path_factory, "again")


def _load(directory: Path, key: str) -> dict[str, np.ndarray]:
    with np.load(directory / FILES[key]) as npz:
        return dict(npz)


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


# --------------------------------------------------------------------------- what ships


def test_packaged_copy_has_every_file_and_stays_small() -> None:
    sizes = {name: (PACKAGED / name).stat().st_size for name in FILES.values()}
    assert sum(sizes.values()) < 700 * 1024


def test_packaged_arrays_have_the_documented_keys_and_shapes() -> None:
    inputs, truth, golden = _load(PACKAGED, "inputs"), _load(PACKAGED, "truth"), _load(PACKAGED, "golden")
    assert inputs["window"].shape == (PACKAGED_INPUTS, 8, 1, 64) and inputs["window"].dtype == np.float32
    assert _load(PACKAGED, "calibration")["window"].shape == (tcn.N_CALIBRATION, 8, 1, 64)
    assert truth["log_conc"].shape == (PACKAGED_INPUTS, 1)
    assert golden["window"].shape == (1, 8, 1, 64) and golden["log_conc"].shape == (1, 1)


def test_model_has_the_motivating_case_structure() -> None:
    model = onnx.load(str(PACKAGED / FILES["float_model"]))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 7 and ops.count("Gemm") == 2
    names = {n.name for n in model.graph.node}
    assert {"input_proj", "block0_conv", "block0_slice", "block0_add", "block0_relu", "block5_relu",
            "last_step", "flatten", "head_gemm1", "head_relu", "head_gemm2"} <= names
    (window,) = model.graph.input
    assert window.name == "window"
    assert [d.dim_param or d.dim_value for d in window.type.tensor_type.shape.dim] == ["N", 8, 1, 64]
    assert [o.name for o in model.graph.output] == ["log_conc"]
    assert model.opset_import[0].version == 17


# --------------------------------------------------------------------------- it runs


@pytest.mark.parametrize("fused", [False, True], ids=["ORT_DISABLE_ALL", "ORT_ENABLE_ALL+qdqisint8"])
@pytest.mark.parametrize("batch", [1, 64])
def test_int8_model_runs_in_onnxruntime(fused: bool, batch: int) -> None:
    model = (PACKAGED / FILES["int8_model"]).read_bytes()
    windows = _load(PACKAGED, "inputs")["window"][:batch]
    out = run_model(model, windows, fused=fused, batch=batch)
    assert out.shape == (batch, 1) and np.isfinite(out).all()
    # fused QLinear kernels requantize in float32 where DQ -> op -> Q rounds in float: the dense
    # trunk moves a few intermediate codes by one LSB, the output by a few of its LSBs (scale ~0.022)
    np.testing.assert_allclose(out, run_model(model, windows, batch=1), atol=0.1)


def test_golden_is_the_reference_output_of_the_int8_model() -> None:
    golden = _load(PACKAGED, "golden")
    out = run_model((PACKAGED / FILES["int8_model"]).read_bytes(), golden["window"])
    np.testing.assert_array_equal(out, golden["log_conc"])


# --------------------------------------------------------------------------- the defect it carries


@pytest.mark.parametrize("where", ["packaged", "fresh"])
def test_block0_add_has_the_forum_scale_ratios(where: str, request: pytest.FixtureRequest) -> None:
    directory = PACKAGED if where == "packaged" else request.getfixturevalue("fresh").out_dir
    scales = block0_add_ratios(directory / FILES["int8_model"])
    projection, conv = scales.ratios
    assert 2.0 <= projection <= 2.1
    assert 0.95 <= conv <= 1.2
    assert scales.output_scale < min(scales.operand_scales)


def test_trunk_is_dense_and_every_block_contributes() -> None:
    """A trained TCN, not a designed one: dense convs, no block near identity, Relus that clip."""
    weights = _initializers(PACKAGED / FILES["float_model"])
    for i in range(6):
        w = np.abs(weights[f"block{i}_conv.weight"][:, :, 0, :]).sum(axis=2)
        assert (w > 0).all() and w.trace() < 0.25 * w.sum(), f"block{i}_conv is (nearly) diagonal"
    blocks = json.loads((PACKAGED / FILES["metadata"]).read_text())["blocks"]
    assert [b["block"] for b in blocks] == list(range(6))
    for b in blocks:
        assert 0.1 <= b["conv_scale"] / b["input_scale"] <= 10.0, b
        assert b["relu_clip_share"] > 0.05, b
    int8 = onnx.load(str(PACKAGED / FILES["int8_model"]))
    for i in range(1, 6):  # only block0_add needs an operand-to-output ratio >= 2 (arith16-wrap wraps it)
        assert max(block0_add_ratios(int8, f"block{i}_add").ratios) < 1.9


def test_block0_add_ratios_refuses_a_float_model() -> None:
    with pytest.raises(ModelError, match="Q/DQ"):
        block0_add_ratios(PACKAGED / FILES["float_model"])


# --------------------------------------------------------------------------- it forecasts


def test_int8_forecast_is_close_to_float_and_beats_persistence(fresh: TcnExample) -> None:
    f, i, p = fresh.float_metrics, fresh.int8_metrics, fresh.persistence_metrics
    assert i.rmse <= 1.1 * f.rmse
    assert i.rmse < 0.95 * p.rmse
    assert i.r2 > 0.95


def test_packaged_int8_predictions_track_the_truth() -> None:
    prediction = run_model((PACKAGED / FILES["int8_model"]).read_bytes(), _load(PACKAGED, "inputs")["window"])
    assert regression_metrics(prediction, _load(PACKAGED, "truth")["log_conc"]).r2 > 0.9


# --------------------------------------------------------------------------- it is reproducible


def test_same_seed_gives_byte_identical_files(fresh: TcnExample, fresh_again: TcnExample) -> None:
    for name in FILES.values():
        assert (fresh.out_dir / name).read_bytes() == (fresh_again.out_dir / name).read_bytes(), name


def test_packaged_copy_equals_a_fresh_build(fresh: TcnExample) -> None:
    """Byte-identical where the packaged copy was built (same libraries, same CPU model).

    Elsewhere float rounding in BLAS/MLAS kernels may move the last bits of weights and
    calibration ranges, so the comparison is numerical: scales, int8 weights and outputs.
    """
    recorded = json.loads((PACKAGED / FILES["metadata"]).read_text())["environment"]
    for key in ("int8_model", "float_model", "inputs", "calibration", "truth"):
        same = (PACKAGED / FILES[key]).read_bytes() == (fresh.out_dir / FILES[key]).read_bytes()
        assert same or recorded != environment(), f"{FILES[key]} differs from a fresh build on the same machine"
    packaged, built = _initializers(PACKAGED / FILES["int8_model"]), _initializers(fresh.int8_model_path)
    assert packaged.keys() == built.keys()
    for name, value in packaged.items():
        atol = 1 if value.dtype.kind == "i" and value.dtype.itemsize == 1 else 0
        np.testing.assert_allclose(built[name], value, rtol=1e-4, atol=atol, err_msg=name)
    windows = _load(PACKAGED, "inputs")["window"]
    np.testing.assert_allclose(run_model(fresh.int8_model_path.read_bytes(), windows),
                               run_model((PACKAGED / FILES["int8_model"]).read_bytes(), windows), atol=0.045)


def test_another_seed_gives_another_model_with_the_same_defect(tmp_path: Path, fresh: TcnExample) -> None:
    other = _build(tmp_path, "seed1", seed=1)
    assert other.int8_model_path.read_bytes() != fresh.int8_model_path.read_bytes()
    assert 2.0 <= other.block0.ratios[0] <= 2.1
    assert other.int8_metrics.r2 > 0.9


# --------------------------------------------------------------------------- it fails cleanly


def test_a_failed_write_leaves_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path, arrays: object) -> None:
        raise OSError("disk full")

    def trained(data: object, seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """The packaged example's weights: what fails here is the write, not the training (30 s)."""
        inits = _initializers(PACKAGED / FILES["float_model"])
        return {k: v for k, v in inits.items() if k.endswith((".weight", ".bias"))}, {}

    monkeypatch.setattr(tcn, "fit_tcn_weights", trained)
    monkeypatch.setattr(tcn, "atomic_save_npz", broken)
    with pytest.raises(OSError, match="disk full"):
        build_tcn_example(tmp_path, n_inputs=4)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(QprobeError, match="not a directory"):
        build_tcn_example(tmp_path / "missing")
    with pytest.raises(QprobeError, match="n_inputs"):
        build_tcn_example(tmp_path, n_inputs=0)


# --------------------------------------------------------------------------- the data


def test_simulation_is_deterministic_and_sensors_follow_the_gas() -> None:
    a, b = simulate_gas_series(3), simulate_gas_series(3)
    np.testing.assert_array_equal(a.channels, b.channels)
    assert not np.array_equal(a.log_conc, simulate_gas_series(4).log_conc)
    assert all(np.corrcoef(a.log_conc, sensor)[0, 1] > 0.8 for sensor in a.channels[:6])


def test_windows_see_only_the_past_and_target_the_horizon() -> None:
    data = example_data(0, n_calibration=8)
    valid, series = data.validation, data.series
    assert valid.end.min() > data.train.end.max() + 64
    i = 5
    last = (series.channels[:, valid.end[i]] - data.mean) / data.std
    np.testing.assert_allclose(valid.windows[i, :, 0, -1], last, rtol=1e-5, atol=1e-5)
    assert valid.target[i] == np.float32(series.log_conc[valid.end[i] + 4])


def test_example_round_trips_through_its_json(fresh: TcnExample) -> None:
    assert TcnExample.load(fresh.out_dir) == fresh
    assert TcnExample.load(PACKAGED).block0 == block0_add_ratios(PACKAGED / FILES["int8_model"])


def test_loading_an_empty_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(QprobeError, match="no readable TCN example"):
        TcnExample.load(tmp_path)


def test_copy_example_writes_the_shipped_files(tmp_path: Path) -> None:
    ex = copy_example(tmp_path)
    for name in FILES.values():
        assert (tmp_path / name).read_bytes() == (PACKAGED / name).read_bytes()
    assert ex.n_inputs == PACKAGED_INPUTS and ex.block0.node == "block0_add"


def test_the_installed_package_holds_no_trainer() -> None:
    shipped = {p.name for p in packaged_example_dir().parent.glob("*.py")}
    assert shipped == {"__init__.py", "tcn.py"}
