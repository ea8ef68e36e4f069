"""``serialized_once``: each model serialized (and its weights summed) once, and the probed copy's bytes made from the
original model's bytes (``probe.probed_bytes``) are the model onnx_ir's serializer writes for it.

Oracle: ``to_proto(probed)`` (onnx_ir's own serializer), compared field by field after parsing, and
onnxruntime's outputs on both forms, on every corpus model with every tensor probed."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from qprobe.model import loader
from qprobe.model.loader import load_model, model_bytes, serialized_once, to_proto
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index

from models.corpus import CORPUS, Built


def _by_name(items: object) -> dict[str, bytes]:
    return {vi.name: vi.SerializeToString(deterministic=True) for vi in items}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_probed_bytes_are_the_probed_copy(corpus: dict[str, Built], name: str) -> None:
    model = load_model(corpus[name].int8)
    plan = plan_probes(model, build_quant_index(model), "all")
    with serialized_once():
        probed = apply_probe_plan(model, plan)
        made = onnx.load_from_string(model_bytes(probed))
    want = to_proto(probed)
    assert [o.SerializeToString(deterministic=True) for o in made.graph.output] == \
        [o.SerializeToString(deterministic=True) for o in want.graph.output]
    assert _by_name(made.graph.value_info) == _by_name(want.graph.value_info)
    assert [n.SerializeToString(deterministic=True) for n in made.graph.node] == \
        [n.SerializeToString(deterministic=True) for n in want.graph.node]
    assert _by_name(made.graph.initializer) == _by_name(want.graph.initializer)
    assert [i.name for i in made.graph.input] == [i.name for i in want.graph.input]
    assert made.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    assert len(model.graph.outputs) == len(probed.graph.outputs) - len(plan.added_outputs)  # the model is not touched
    samples = {k: v[:1] for k, v in corpus[name].samples().items()}  # one sample: some have a fixed batch of 1
    runs = [ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, samples)
            for data in (made.SerializeToString(), want.SerializeToString())]
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_each_model_is_serialized_once_inside_and_afresh_outside(corpus: dict[str, Built],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(corpus["tcn_dilated"].int8)
    calls: list[object] = []
    real = loader.to_proto
    def counted(m: object) -> onnx.ModelProto:
        calls.append(m)
        return real(m)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "to_proto", counted)
    with serialized_once():
        first = model_bytes(model)
        with serialized_once():  # nested: the outer memo
            assert model_bytes(model) is first
    assert len(calls) == 1
    model.graph.outputs.pop()  # a change after the block is seen: the memo is gone
    assert model_bytes(model) != first and len(calls) == 2


def test_versions_are_the_installed_distributions() -> None:
    """``serde.versions`` reads imported packages' ``__version__``; the oracle is the installed
    distributions' metadata (and qprobe's pyproject version, which the metadata carries)."""
    from importlib import metadata

    from qprobe import serde

    got = serde.versions()
    for name in ("qprobe", "numpy", "onnx", "onnx-ir", "onnxruntime"):
        assert got[name] == metadata.version(name), name


def test_weight_bytes_counts_every_initializer_once_per_block(corpus: dict[str, Built]) -> None:
    model = load_model(corpus["tcn_dilated"].int8)
    want = sum(onnx.numpy_helper.to_array(t).nbytes for t in onnx.load(corpus["tcn_dilated"].int8).graph.initializer)
    with serialized_once():
        assert loader.weight_bytes(model) == want
        model.graph.initializers.pop(next(iter(model.graph.initializers)))
        assert loader.weight_bytes(model) == want  # memoized inside the block (models must not change there)
    assert loader.weight_bytes(model) < want
