"""compare_backends end to end: exact backends, a mutated target, JSON round trip."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

from qprobe.backends import BackendBase, Capabilities, create_backend
from qprobe.backends.onnxruntime import OrtBackend, OrtSession
from qprobe.compare import Comparison, compare_backends, parse_policy
from qprobe.metrics import st_metrics
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import clone_model, load_model

from models.residual import qdq_residual_model


class ScaledWeightTarget(BackendBase):
    """A fake target: onnxruntime on a copy of the model whose ``weight`` codes are scaled."""

    spec = "fake:scaled-weights"

    def __init__(self, weight: str, factor: float) -> None:
        self.weight, self.factor = weight, factor
        self._ort = OrtBackend(fused=False)

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def open(self, model: ir.Model) -> OrtSession:
        m = clone_model(model)
        init = m.graph.initializers[self.weight]
        w = init.const_value.numpy()  # type: ignore[union-attr]
        scaled = np.clip(np.rint(w * self.factor), -127, 127).astype(w.dtype)
        init.const_value = ir.tensor(scaled, name=self.weight)
        return self._ort.open(m)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(qdq_residual_model(tmp_path_factory.mktemp("m")))


def _weight_name(model: ir.Model, conv: str) -> str:
    node = next(n for n in model.graph if n.name == conv)
    dq = node.inputs[1].producer()  # type: ignore[union-attr]
    return dq.inputs[0].name  # type: ignore[union-attr,return-value]


def test_identical_backends_are_exact(model: ir.Model) -> None:
    inp = random_inputs(model, 12, 3)
    cmp = compare_backends(model, create_backend("ort"), create_backend("ort"), inp, probe="all", batch_size=5)
    assert cmp.passed and all(r.verdict == "exact" for r in cmp.rows)
    assert all(e.checked and not e.changed_outputs for e in cmp.probe_effects)


def test_mutated_conv_is_the_first_failing_tensor(model: ir.Model, tmp_path: Path) -> None:
    inp = random_inputs(model, 16, 4)
    target = ScaledWeightTarget(_weight_name(model, "conv2"), 0.5)
    cmp = compare_backends(model, create_backend("ort"), target, inp, batch_size=7)
    assert not cmp.passed
    first = cmp.first_failing
    assert first is not None and first.producer == "conv2"
    assert cmp.row("c1_QuantizeLinear_Output").verdict == "exact"  # upstream of the defect
    assert first.lsb is not None and first.lsb.mean_delta_lsb != 0
    # the streamed metrics equal ST's formulas on the whole arrays
    ref = create_backend("ort").open(model).run(inp.arrays)["y"]
    tgt = target.open(model).run(inp.arrays)["y"]
    whole = st_metrics(ref, tgt)
    got = cmp.row("y").st
    assert got.rmse == pytest.approx(whole.rmse, rel=1e-12)
    assert got.cos == pytest.approx(whole.cos, rel=1e-12)
    # JSON round trip
    p = tmp_path / "cmp.json"
    cmp.save(p)
    back = Comparison.load(p)
    assert back.to_json() == cmp.to_json()
    assert back.first_failing is not None and back.first_failing.name == first.name


def test_policy_overrides_per_tensor(model: ir.Model) -> None:
    inp = random_inputs(model, 8, 5)
    target = ScaledWeightTarget(_weight_name(model, "conv2"), 0.5)
    loose = parse_policy("cos=-1,bias=1000,local=0", None)  # every rule off, the identical-inputs one too
    assert compare_backends(model, create_backend("ort"), target, inp, policy=loose).passed


class _RecordingOnly(BackendBase):
    spec = "fake:recorded"

    def __init__(self, outputs: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]) -> None:
        self._out, self._in = dict(outputs), dict(inputs)

    def capabilities(self) -> Capabilities:
        return Capabilities(accepts_models=False, available_tensors=frozenset(self._out))

    def recorded_inputs(self, model: ir.Model) -> dict[str, np.ndarray]:
        return self._in

    def open(self, model: ir.Model) -> _RecordingOnly:
        self.info: dict[str, str] = {}
        return self

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0]
        return {k: v[first_sample : first_sample + n] for k, v in self._out.items()}

    def close(self) -> None:
        pass


def test_only_tensors_the_target_has_are_compared(model: ir.Model) -> None:
    inp = random_inputs(model, 6, 6)
    out = create_backend("ort").open(model).run(inp.arrays)
    rec = _RecordingOnly({"y": out["y"]}, inp.arrays)
    cmp = compare_backends(model, create_backend("ort"), rec, None, probe="op-outputs", batch_size=4)
    assert [r.name for r in cmp.rows] == ["y"] and cmp.passed
    assert cmp.inputs == "recorded by fake:recorded"


def test_traces_record_plan_quant_and_session_options(model: ir.Model) -> None:
    inp = random_inputs(model, 5, 7)
    seen = []
    cmp = compare_backends(
        model, create_backend("ort"), create_backend("ort-fused"), inp, batch_size=2,
        on_traces=lambda r, t: seen.append((r, t)),
    )
    assert [r.first_sample for r, _ in seen] == [0, 2, 4]
    ref, tgt = seen[0]
    assert ref.plan == cmp.plan and set(ref.records) == set(cmp.plan.tensors)
    assert ref.session_info["graph_optimization_level"] == "ORT_DISABLE_ALL"
    assert tgt.session_info["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert tgt.session_info["session.qdqisint8allowed"] == "1"
    rec = ref.records["c1_QuantizeLinear_Output"]
    assert rec.is_codes and rec.quant is not None and rec.data.shape[0] == 2
