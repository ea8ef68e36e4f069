"""The pipeline's seams (issue 9): run_traces, compare_traces over mergeable accumulators,
one strict JSON codec, a stateless engine with explicit scoping for cuts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

from qprobe import serde
from qprobe.backends import create_backend
from qprobe.compare import (
    ComparisonAccumulator,
    Streams,
    accumulate,
    compare_backends,
    compare_traces,
    finish,
    run_traces,
)
from qprobe.errors import ProfileError
from qprobe.metrics import LsbAccumulator, StAccumulator
from qprobe.model.inputs import InputSet, random_inputs
from qprobe.model.loader import load_model
from qprobe.model.probe import plan_probes
from qprobe.model.quant import build_quant_index
from qprobe.serde import SchemaError
from qprobe.tensors import QuantParams, Trace

from models.residual import qdq_residual_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(qdq_residual_model(tmp_path_factory.mktemp("spine")))


def _strict(text: str) -> object:
    def no_constant(name: str) -> object:
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=no_constant)


def _chunks(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(rng.normal(size=(n, 5)), rng.normal(size=(n, 5))) for n in (3, 1, 7, 2)]


def test_st_and_lsb_accumulators_merge_in_any_grouping() -> None:
    chunks = _chunks(np.random.default_rng(0))
    q = QuantParams.from_arrays(0.1, 0, "int8")

    def acc_of(part: list[tuple[np.ndarray, np.ndarray]]) -> tuple[StAccumulator, LsbAccumulator]:
        st, lsb = StAccumulator(), LsbAccumulator(q)
        for r, t in part:
            st.add(r, t)
            lsb.add(r, t)
        return st, lsb

    whole = acc_of(chunks)
    left = acc_of(chunks[:1])
    left[0].merge(acc_of(chunks[1:2])[0]).merge(acc_of(chunks[2:])[0])
    left[1].merge(acc_of(chunks[1:2])[1]).merge(acc_of(chunks[2:])[1])
    right_st, right_lsb = acc_of(chunks[:2])
    right_st.merge(acc_of(chunks[2:3])[0].merge(acc_of(chunks[3:])[0]))
    right_lsb.merge(acc_of(chunks[2:3])[1].merge(acc_of(chunks[3:])[1]))
    for st in (left[0], right_st):
        a, b = st.result(), whole[0].result()
        assert a.n == b.n and np.allclose(list(vars(a).values())[1:-1], list(vars(b).values())[1:-1], rtol=1e-12)
    for lsb in (left[1], right_lsb):
        a, b = lsb.result(), whole[1].result()  # counts, shares, max and histogram exact; the mean up to order
        assert (a.n, a.exact_share, a.max_abs_lsb, a.big_share, a.histogram) == (b.n, b.exact_share, b.max_abs_lsb,
                                                                                 b.big_share, b.histogram)
        assert np.isclose(a.mean_delta_lsb, b.mean_delta_lsb, rtol=1e-12)


def _traces(model: ir.Model, spec: str, inputs: InputSet, batch: int) -> Iterator[Trace]:
    plan = plan_probes(model, build_quant_index(model), "all")
    return run_traces(create_backend(spec), model, plan, inputs, batch)


def test_comparison_accumulators_merge_to_the_one_pass_result(model: ir.Model) -> None:
    inputs = random_inputs(model, 9, seed=3)
    outputs = [str(v.name) for v in model.graph.outputs]
    one = accumulate(Streams(_traces(model, "ort", inputs, 9), _traces(model, "ort-fused", inputs, 9)), outputs)
    parts = []
    for _first, feeds in inputs.batches(4):
        part = InputSet(feeds, "part")
        done = accumulate(Streams(_traces(model, "ort", part, 2), _traces(model, "ort-fused", part, 2)), outputs)
        parts.append(done.acc)
    merged: ComparisonAccumulator = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    one_cmp, merged_cmp = finish(one), finish(type(one)(merged, one.plan, one.specs))
    assert merged.samples == 9 and merged_cmp.num_samples == 9
    for a, b in zip(one_cmp.rows, merged_cmp.rows, strict=True):
        assert a.name == b.name and a.lsb == b.lsb and a.verdict == b.verdict
        assert np.isclose(a.st.rmse, b.st.rmse, rtol=1e-12) and np.isclose(a.st.cos, b.st.cos, rtol=1e-12)


def test_run_traces_yields_one_trace_per_batch_and_closes(model: ir.Model) -> None:
    inputs = random_inputs(model, 5, seed=1)
    traces = list(_traces(model, "ort", inputs, 2))
    assert [t.first_sample for t in traces] == [0, 2, 4] and [t.num_samples for t in traces] == [2, 2, 1]
    q = traces[0].records
    codes = [n for n, r in q.items() if r.is_codes]
    assert codes and all(q[n].quant is not None for n in codes)
    cmp = compare_traces(_traces(model, "ort", inputs, 2), iter(traces), outputs=["y"])
    assert cmp.passed and all(r.verdict == "exact" for r in cmp.rows)


def test_every_document_is_strict_json_with_schema_and_provenance(model: ir.Model, tmp_path: Path) -> None:
    inputs = random_inputs(model, 4, seed=2)
    cmp = compare_backends(model, create_backend("ort"), create_backend("engine:arith16-wrap"), inputs, probe="all")
    cmp.save(tmp_path / "c.json")
    doc = _strict((tmp_path / "c.json").read_text())
    assert isinstance(doc, dict) and doc["schema"] == "qprobe.comparison/1"
    assert doc["provenance"]["backends"]["target"] == {"spec": "engine:arith16-wrap", "options": {}}
    assert "onnxruntime" in doc["provenance"]["versions"] and doc["policy"]["default"]["min_cos"] == 0.99
    assert serde.dumps({"a": float("nan"), "b": [np.float32("inf")]}) == '{\n  "a": null,\n  "b": [\n    null\n  ]\n}'


def test_load_rejects_other_and_newer_schemas(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"schema": "qprobe.comparison/7"}))
    with pytest.raises(SchemaError, match="newer than this qprobe reads"):
        serde.load(p, "qprobe.comparison/1")
    p.write_text(json.dumps({"schema": "qprobe.divergence/1"}))
    with pytest.raises(SchemaError, match="'qprobe.divergence' document, not 'qprobe.comparison'"):
        serde.load(p, "qprobe.comparison/1")
    p.write_text('{"schema": "qprobe.comparison/1", "x": NaN}')
    with pytest.raises(SchemaError, match="not valid JSON"):
        serde.load(p, "qprobe.comparison/1")


def test_engine_open_is_stateless_and_cuts_are_scoped_explicitly(model: ir.Model) -> None:
    from qprobe.model.extract import extract_subgraph

    index = build_quant_index(model)
    add = index.op("add")
    b = create_backend("engine:onnxruntime", {"nodes.add.compute": "float", "nodes.conv2.compute": "float"})
    b.open(model).close()
    cut = extract_subgraph(model, [q for q in add.q_inputs if q], [add.observed_outputs[0]])
    names = [str(n.name) for n in cut.graph]
    with pytest.raises(ProfileError, match="'conv2'"):  # the same open on a cut: no memory of the first model
        b.open(cut)
    scoped = b.scoped(names)
    scoped.open(cut).close()
    renamed = ir.from_proto(ir.to_proto(model))
    next(n for n in renamed.graph if n.name == "add").name = "add_rewritten"
    with pytest.raises(ProfileError, match="'add'"):  # a rewrite that renames the culprit cannot pass vacuously
        b.open(renamed)
