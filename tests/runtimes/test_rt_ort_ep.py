"""``ort-ep:PROVIDER``: onnxruntime with one execution provider, its options and its partitioning.

Oracle: a plain ``onnxruntime.InferenceSession`` with the same provider and onnxruntime's
default session options, and the model's own node list for the recorded assignment.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from qprobe.backends import create_backend
from qprobe.errors import BackendError
from qprobe.model.loader import load_model

from models.runtimes import Built


def _plain(b: Built, provider: str) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(b.int8), so, providers=[provider])
    return sess.run(["y"], b.inputs)[0]


def test_cpu_provider_computes_what_a_default_onnxruntime_session_computes(built: dict[str, Built]) -> None:
    for name in ("residual", "attention"):
        b = built[name]
        s = create_backend("ort-ep:CPUExecutionProvider").open(load_model(b.int8))
        np.testing.assert_array_equal(s.run(b.inputs)["y"], _plain(b, "CPUExecutionProvider"), err_msg=name)
        assert s.info["provider"] == "CPUExecutionProvider"
        assert s.info["providers"].split(",")[0] == "CPUExecutionProvider"


def test_the_assignment_of_every_node_is_recorded(built: dict[str, Built]) -> None:
    b = built["residual"]
    m = load_model(b.int8)
    s = create_backend("ort-ep:CPU").open(m)  # the ExecutionProvider suffix may be left out
    if not s.info.get("fusion_map"):
        pytest.skip(s.info.get("fusion_map_note", "no graph assignment report"))
    fmap = json.loads(s.info["fusion_map"])
    assigned = {n for k in fmap["kernels"] for n in k["nodes"]}
    assert assigned == {n.name for n in m.graph}
    assert {k["type"] for k in fmap["kernels"]} == {"CPUExecutionProvider"}
    # the CPU provider takes nodes one by one: no partition fuses two compute nodes
    assert create_backend("ort-ep:CPU").fusion_groups(m) == []


def test_session_and_provider_options_are_split_and_recorded(built: dict[str, Built]) -> None:
    b = built["residual"]
    backend = create_backend("ort-ep:CPUExecutionProvider", {"threads": "2", "session.qdqisint8allowed": "1"})
    s = backend.open(load_model(b.int8))
    s.run(b.inputs)
    assert s.info["intra_op_num_threads"] == "2" and s.info["session.qdqisint8allowed"] == "1"
    assert json.loads(s.info["provider_options"]) == {}
    assert backend.capabilities().probe_sensitive


def test_xnnpack_runs_where_the_wheel_has_it(built: dict[str, Built]) -> None:
    if "XnnpackExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime wheel ({ort.__version__}) has no XnnpackExecutionProvider: "
                    f"{', '.join(ort.get_available_providers())}")
    b = built["residual"]
    s = create_backend("ort-ep:XnnpackExecutionProvider").open(load_model(b.int8))
    out = s.run(b.inputs)["y"]
    np.testing.assert_array_equal(out, _plain(b, "XnnpackExecutionProvider"))
    assert "XnnpackExecutionProvider" in s.info["providers"]


@pytest.mark.parametrize("provider", ["NoSuchExecutionProvider", "QNNExecutionProvider"])
def test_an_unavailable_provider_is_one_line_listing_the_available_ones(provider: str) -> None:
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is installed here")
    with pytest.raises(BackendError) as e:
        create_backend(f"ort-ep:{provider}")
    msg = str(e.value)
    assert "\n" not in msg and provider in msg
    for p in ort.get_available_providers():
        assert p in msg
    if provider == "QNNExecutionProvider":
        assert "onnxruntime-qnn" in msg


def test_ort_ep_needs_a_provider_name() -> None:
    with pytest.raises(BackendError, match="needs an argument"):
        create_backend("ort-ep")
