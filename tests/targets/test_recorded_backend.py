"""recorded:PATH: generic recordings (codes, floats, sidecar) and ST val_io files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from targets_support import make_val_io

from qprobe.backends import create_backend
from qprobe.backends.onnxruntime import OrtBackend
from qprobe.backends.recorded import RecordedBackend, TensorMeta
from qprobe.compare import compare_backends
from qprobe.errors import BackendError, InputError
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan
from qprobe.model.quant import build_quant_index
from qprobe.tensors import ProbePlan

C1 = "c1_QuantizeLinear_Output"  # conv1's int8 output codes, [N, 4, 8, 8]
R = "r_QuantizeLinear_Output"  # the residual Add's int8 output codes


def _probed(model: ir.Model, *names: str) -> ir.Model:
    return apply_probe_plan(model, ProbePlan("explicit", (*names, "y"), names))


def _ort(model: ir.Model, inputs: InputSet, *names: str) -> dict[str, np.ndarray]:
    return OrtBackend(fused=False).open(_probed(model, *names)).run(inputs.arrays)


def _recording(tmp: Path, arrays: dict[str, np.ndarray], sidecar: dict | None = None) -> RecordedBackend:
    p = tmp / "board.npz"
    np.savez(p, **arrays)
    if sidecar is not None:
        p.with_suffix(".json").write_text(json.dumps(sidecar))
    b = create_backend(f"recorded:{p}")
    assert isinstance(b, RecordedBackend)
    return b


def test_serves_what_it_has_for_the_asked_samples(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    ref = _ort(model, inputs, C1)
    b = _recording(tmp_path, {"x": inputs.arrays["x"], C1: ref[C1], "y": ref["y"]})
    caps = b.capabilities()
    assert caps.available_tensors == frozenset({"x", C1, "y"}) and not caps.accepts_models
    assert b.recorded_inputs() is None  # which keys are inputs is known once bound to a model
    assert np.array_equal(b.recorded_inputs(model)["x"], inputs.arrays["x"])  # type: ignore[index]
    s = b.open(_probed(model, C1, R))  # R is probed but not recorded: not returned
    out = s.run({"x": inputs.arrays["x"][2:5]}, first_sample=2)
    assert set(out) == {C1, "y"} and out[C1].dtype == np.int8
    assert np.array_equal(out[C1], ref[C1][2:5]) and np.array_equal(out["y"], ref["y"][2:5])
    assert set(b.open(model).run(inputs.arrays)) == {"y"}


def test_other_inputs_or_samples_are_refused(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    ref = _ort(model, inputs)
    b = _recording(tmp_path, {"x": inputs.arrays["x"], "y": ref["y"]})
    s = b.open(model)
    with pytest.raises(InputError,
                       match="inputs differ from the recorded ones; pass --inputs <the recorded npz> or omit --inputs"):
        s.run({"x": inputs.arrays["x"][:2] + 0.1})
    with pytest.raises(InputError, match="inputs differ from the recorded ones"):
        s.run({"x": inputs.arrays["x"][1:3]}, first_sample=0)  # same data, wrong place
    with pytest.raises(InputError, match=r"holds 6 samples; samples 5..6 were asked for"):
        s.run({"x": inputs.arrays["x"][:2]}, first_sample=5)


def test_compare_against_a_faithful_recording_is_exact(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    ref = _ort(model, inputs, C1, R)
    b = _recording(tmp_path, {"x": inputs.arrays["x"], C1: ref[C1], R: ref[R], "y": ref["y"]})
    b.bind(model)  # TODO(compare): compare_backends should bind recorded backends itself
    cmp = compare_backends(model, create_backend("ort"), b, None, probe="all", batch_size=4)
    assert [r.name for r in cmp.rows] == [C1, R, "y"]  # only what the recording has
    assert all(r.verdict == "exact" for r in cmp.rows) and cmp.num_samples == 6


def test_sidecar_layout_and_scales(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    ref = _ort(model, inputs, C1, R)
    q_r = build_quant_index(model).tensors[R]
    nhwc = ref[C1].transpose(0, 2, 3, 1)
    # R recorded with half the model's scale: codes double (clipped), zero point moved
    codes_r = np.clip((ref[R].astype(np.int32) - q_r.zero_point[0]) * 2 + 3, -128, 127).astype(np.int8)
    side = {"tensors": {C1: {"layout": "NHWC"}, R: {"scale": q_r.scale[0] / 2, "zero_point": 3},
                        "y": {"scale": 1.0}}}
    b = _recording(tmp_path, {C1: nhwc, R: codes_r, "y": ref["y"]}, side)
    out = b.open(_probed(model, C1, R)).run(inputs.arrays)
    assert out[C1].dtype == np.int8 and np.array_equal(out[C1], ref[C1])  # back to NCHW, codes kept
    assert out[R].dtype == np.float32  # other params: real values, dequantized with the recorded ones
    real = (ref[R].astype(np.float64) - q_r.zero_point[0]) * q_r.scale[0]
    unclipped = np.abs(codes_r.astype(np.int32)) < 127
    assert np.allclose(out[R][unclipped], real[unclipped], rtol=1e-6, atol=1e-7)
    assert np.array_equal(out["y"], ref["y"])  # floats are never touched by a scale


def test_recording_errors_name_the_problem(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    b = _recording(tmp_path, {"c1_QuantizeLinear_Outptu": np.zeros((2, 4, 8, 8), np.int8)})
    with pytest.raises(InputError,
                       match="'c1_QuantizeLinear_Outptu' is not a tensor of the model; did you mean "
                             "c1_QuantizeLinear_Output"):
        b.open(model)
    with pytest.raises(BackendError, match="known: sidecar, layout, side, c_info"):
        create_backend(f"recorded:{tmp_path / 'board.npz'}", {"sied": "m"})
    with pytest.raises(BackendError, match="side= applies to ST val_io files only"):
        create_backend(f"recorded:{tmp_path / 'board.npz'}", {"side": "m"})
    y = _ort(model, inputs)["y"]
    b = _recording(tmp_path, {"y": y, "x": inputs.arrays["x"][:4]})
    with pytest.raises(InputError, match="different sample counts"):
        b.open(model)
    with pytest.raises(InputError, match="does not exist"):
        create_backend(f"recorded:{tmp_path / 'nope.npz'}")


# ---------------------------------------------------------------- ST val_io files


def _val_io(tmp: Path, model_path: Path, n: int = 8, **kw: int) -> Path:
    x = np.random.default_rng(11).uniform(0, 1, (n, 3, 8, 8)).astype(np.float32)
    return make_val_io(model_path, x, tmp / "network_val_io.npz", **kw)


def test_st_c_side_is_mapped_onto_the_model(tmp_path: Path, model: ir.Model, model_path: Path) -> None:
    p = _val_io(tmp_path, model_path, bias=1)
    with np.load(p) as z:
        m_x, m_y, c_y = z["m_inputs_1"], z["m_outputs_1"], z["c_outputs_1"]
    b = create_backend(f"recorded:{p}")
    assert isinstance(b, RecordedBackend)
    with pytest.raises(BackendError, match="call bind\\(model\\)"):
        b.capabilities()
    b.bind(model)
    assert b.capabilities().available_tensors == frozenset({"x", "y"})
    x = b.recorded_inputs()["x"]  # type: ignore[index]
    assert x.shape == m_x.shape and x.dtype == np.float32  # NHWC int8 codes -> the model's float NCHW
    scale = float(build_quant_index(model).quant_of("x_QuantizeLinear_Output").scale[0])  # type: ignore[union-attr]
    assert np.max(np.abs(x - m_x)) <= scale / 2 + 1e-7
    y = b.open(model).run({"x": m_x})["y"]
    q = build_quant_index(model).quant_of("y")
    assert q is not None and y.shape == m_y.shape and y.dtype == np.float32
    assert np.array_equal(y, (c_y.reshape(m_y.shape).astype(np.float32) - q.zero_point[0]) * np.float32(q.scale[0]))
    m = create_backend(f"recorded:{p}", {"side": "m"})
    assert np.array_equal(m.open(model).run({"x": m_x})["y"], m_y)


def test_st_file_from_another_model_is_refused(tmp_path: Path, model: ir.Model, model_path: Path) -> None:
    p = tmp_path / "other_val_io.npz"
    np.savez(p, c_outputs_1=np.zeros((2, 3), np.int8), c_outputs_2=np.zeros((2, 3), np.int8))
    with pytest.raises(InputError, match="the file has 0 inputs and 2 outputs, the model 1 and 1"):
        create_backend(f"recorded:{p}").open(model)  # type: ignore[attr-defined]


def test_sidecar_entries_round_trip_json() -> None:
    m = TensorMeta(scale=(0.05, 0.1), zero_point=(0, 0), axis=1, layout="NHWC")
    assert TensorMeta.from_json(json.loads(json.dumps(m.to_json()))) == m
    assert TensorMeta.from_json({"scale": 0.5}) == TensorMeta(scale=(0.5,))
