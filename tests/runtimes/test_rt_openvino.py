"""The ``openvino`` backend: options, devices, names, batching, provenance.

Oracle: onnxruntime (``ort-fused``) on the same model and samples, which OpenVINO's CPU
plugin matches bit for bit on the residual net (checked here), and the model file itself.
"""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from qprobe.backends import create_backend
from qprobe.errors import BackendError
from qprobe.model.loader import load_model

from models.runtimes import Built

ov = pytest.importorskip("openvino", reason="openvino is not installed (pip install qprobe[openvino])")


def _ort(model_path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = create_backend("ort-fused").open(load_model(model_path))
    return s.run(feeds)


def test_outputs_are_named_by_the_onnx_tensor_names_and_match_onnxruntime(built: dict[str, Built]) -> None:
    b = built["residual"]
    out = create_backend("openvino").open(load_model(b.int8)).run(b.inputs)
    ref = _ort(b.int8, b.inputs)
    assert set(out) == set(ref) == {"y"}
    np.testing.assert_array_equal(out["y"], ref["y"])


def test_extra_probe_outputs_keep_their_names(built: dict[str, Built]) -> None:
    from qprobe.model.probe import apply_probe_plan, plan_probes
    from qprobe.model.quant import build_quant_index

    m = load_model(built["tcn"].int8)
    plan = plan_probes(m, build_quant_index(m), "all")
    probed = apply_probe_plan(m, plan)
    out = create_backend("openvino").open(probed).run(built["tcn"].inputs)
    ref = create_backend("ort-fused").open(probed).run(built["tcn"].inputs)
    assert set(out) == set(ref) and set(plan.tensors) <= set(out)
    for name in plan.tensors:
        assert out[name].dtype == ref[name].dtype, name
        np.testing.assert_array_equal(out[name], ref[name], err_msg=name)


def test_a_dynamic_batch_is_reshaped_per_run_and_a_fixed_batch_is_run_per_sample(
    built: dict[str, Built], tmp_path: Path
) -> None:
    b = built["residual"]
    proto = onnx.load(str(b.int8))
    for v in (*proto.graph.input, *proto.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(proto, str(fixed))
    ref = _ort(b.int8, b.inputs)["y"]
    dyn = create_backend("openvino").open(load_model(b.int8))
    np.testing.assert_array_equal(dyn.run({"x": b.inputs["x"][:4]})["y"], ref[:4])
    np.testing.assert_array_equal(dyn.run({"x": b.inputs["x"][4:]})["y"], ref[4:])
    assert "dynamic" in dyn.info["batch"]
    assert json.loads(dyn.info["fusion_map_input_shapes"]) == [[4, 3, 8, 8]]
    one = create_backend("openvino").open(load_model(fixed))
    np.testing.assert_array_equal(one.run(b.inputs)["y"], ref)
    assert one.info["batch"].startswith("fixed 1")


def test_the_session_records_the_precision_it_ran_at_and_the_options(built: dict[str, Built]) -> None:
    b = built["residual"]
    s = create_backend("openvino", {"threads": "2", "hint": "throughput", "NUM_STREAMS": "1"}).open(load_model(b.int8))
    s.run(b.inputs)
    info = s.info
    assert info["inference_precision_requested"] == "f32"
    assert info["inference_precision"] == "f32"  # read back from the compiled model
    assert info["threads"] == "2" and info["performance_hint"] == "THROUGHPUT"
    assert info["property.NUM_STREAMS"] == "1"
    assert info["device"] == "CPU" and info["openvino"] == ov.get_version()
    assert json.loads(info["fusion_map"])["schema"] == "qprobe.fusion-map/1"


def test_capabilities_say_probing_changes_what_openvino_computes() -> None:
    caps = create_backend("openvino").capabilities()
    assert caps.probe_sensitive and caps.accepts_models and caps.deterministic
    assert caps.concurrency >= 1


def test_runs_are_deterministic(built: dict[str, Built]) -> None:
    b = built["attention"]
    m = load_model(b.int8)
    first = create_backend("openvino").open(m).run(b.inputs)["y"]
    second = create_backend("openvino").open(m).run(b.inputs)["y"]
    np.testing.assert_array_equal(first, second)


def test_an_unavailable_device_lists_the_available_ones() -> None:
    with pytest.raises(BackendError) as e:
        create_backend("openvino:NOSUCHDEVICE")
    msg = str(e.value)
    assert "\n" not in msg
    for dev in ov.Core().available_devices:
        assert dev in msg


@pytest.mark.parametrize(("options", "match"), [
    ({"precision": "int4"}, "precision='int4'"), ({"hint": "fast"}, "hint='FAST'"),
    ({"colour": "red"}, "unknown option"), ({"threads": "many"}, "not an integer"),
])
def test_bad_options_are_one_line_errors(options: dict[str, str], match: str) -> None:
    with pytest.raises(BackendError, match=match) as e:
        create_backend("openvino", options)
    assert "\n" not in str(e.value)


def test_without_openvino_the_spec_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_openvino(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "openvino" or name.startswith("openvino."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "qprobe.backends.openvino", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(BackendError, match=r"pip install qprobe\[openvino\]"):
        create_backend("openvino")


def test_a_compile_failure_is_one_line_and_suggests_f32(built: dict[str, Built]) -> None:
    """OpenVINO 2026.4's CPU plugin has no bf16 kernels for these int8 QDQ Convs on this kind of
    host; whatever the host, a failure must come back as a one-line BackendError."""
    b = built["residual"]
    try:
        create_backend("openvino", {"precision": "bf16"}).open(load_model(b.int8)).run(b.inputs)
    except BackendError as e:
        assert "\n" not in str(e) and "precision=f32" in str(e)
