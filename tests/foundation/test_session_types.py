"""A comparison of two onnxruntime backends takes the probed tensors' types from the reference's
probed session (``TypedSession.value_types``) instead of ONNX shape inference.

Oracles: ONNX shape inference (``shapes.value_types``) for every tensor whose shape it knows, on
every corpus model (same element type, same per-sample dimensions, so the same batch), and the
comparison made through ONNX's types (a target that does not type outputs itself), which must
give the same rows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qprobe.backends import create_backend
from qprobe.backends.base import Capabilities
from qprobe.compare import compare_backends, restrict_plan
from qprobe.compare import run as compare_run
from qprobe.compare.budget import DEFAULT_MEMORY_BUDGET, choose_batch_size, sample_bytes, working_bytes
from qprobe.model import shapes
from qprobe.model.inputs import InputSet
from qprobe.model.loader import load_model, model_bytes, serialized_once
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index

from models.corpus import CORPUS, Built


def _known(vi: object) -> tuple[int, tuple[int, ...]] | None:
    tt = vi.type.tensor_type  # type: ignore[attr-defined]
    if not tt.HasField("shape") or not all(d.HasField("dim_value") for d in list(tt.shape.dim)[1:]):
        return None
    return tt.elem_type, tuple(d.dim_value for d in list(tt.shape.dim)[1:])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_session_types_agree_with_onnx_shape_inference(corpus: dict[str, Built], name: str) -> None:
    model = load_model(corpus[name].int8)
    ref = create_backend("ort")
    plan = restrict_plan(plan_probes(model, build_quant_index(model), "all"), ref)
    with serialized_once():
        onnx_types = shapes.value_types(shapes.inferred(model_bytes(model)), already_inferred=True)
        session = ref.open(apply_probe_plan(model, plan, declare_types=False))
        got = session.value_types()  # type: ignore[attr-defined]
    names = [*plan.tensors, *(v.name for v in model.graph.inputs if v.name not in model.graph.initializers)]
    compared = 0
    for n in names:
        want = _known(onnx_types[n]) if n in onnx_types else None
        if want is None:
            continue  # ONNX does not know it (contrib ops): onnxruntime may
        assert n in got and _known(got[n]) == want, n
        compared += 1
    assert compared >= len(names) // 2
    if compared == len(names):  # every size known to both: the same budget
        assert sample_bytes(model, plan, got) == sample_bytes(model, plan, onnx_types)
        assert working_bytes(model, got) == working_bytes(model, onnx_types)
        assert choose_batch_size(model, plan, DEFAULT_MEMORY_BUDGET, maximum=4096, types=got) == \
            choose_batch_size(model, plan, DEFAULT_MEMORY_BUDGET, maximum=4096, types=onnx_types)


class _UntypingTarget:
    """ort-fused as a backend that does not type outputs itself (compare falls back to ONNX's types)."""

    def __init__(self) -> None:
        self._b = create_backend("ort-fused")
        self.spec, self.spec_options = self._b.spec, self._b.spec_options

    def capabilities(self) -> Capabilities:
        return replace(self._b.capabilities(), types_outputs=False)

    def __getattr__(self, item: str) -> object:
        return getattr(self._b, item)


@pytest.mark.parametrize("name", ["tcn_dilated", "qoperator_constant", "oe_uint8_io", "attention"])
def test_comparison_without_shape_inference_matches_the_onnx_typed_one(corpus: dict[str, Built], name: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(corpus[name].int8)
    inputs = InputSet({k: v[:8] for k, v in corpus[name].samples().items()}, "corpus")
    slow = compare_backends(model, create_backend("ort"), _UntypingTarget(), inputs, probe="all")  # type: ignore[arg-type]

    def refused(*_a: object, **_k: object) -> object:
        raise AssertionError("ONNX shape inference ran")

    monkeypatch.setattr(compare_run, "inferred", refused)
    fast = compare_backends(model, create_backend("ort"), create_backend("ort-fused"), inputs, probe="all")
    assert fast.provenance["batch_size"] == slow.provenance["batch_size"]
    def rows(c: object) -> list[tuple[object, ...]]:
        return [(r.name, r.verdict, r.st, r.lsb) for r in c.rows]  # type: ignore[attr-defined]

    assert rows(fast) == rows(slow)
    assert fast.deployed == slow.deployed
