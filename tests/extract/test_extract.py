"""Subgraph cuts: valid, runnable, names kept, and bit-exact with the full model in onnxruntime.

Oracle: onnxruntime runs the *full* model with every tensor exposed; a cut fed with
those values must reproduce the full model's values of its outputs exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from qprobe.backends import create_backend
from qprobe.errors import InputError
from qprobe.model.extract import Island, extract_islands, extract_subgraph, quant_boundary
from qprobe.model.graph import is_constant
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model, to_proto
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index

from models.random_qdq import random_qdq_model
from models.residual import qdq_residual_model


def _activations(model: ir.Model) -> list[str]:
    """Tensors that vary with the input (not weights, biases or their DequantizeLinear)."""
    return [str(v.name) for nd in model.graph for v in nd.outputs if v.name and not is_constant(v)]


def _all_tensors(model: ir.Model, spec: str = "ort", n: int = 3) -> dict[str, np.ndarray]:
    """Every activation tensor of the full model, as onnxruntime computes it."""
    names = _activations(model)
    plan = plan_probes(model, build_quant_index(model), names)
    inp = random_inputs(model, n, seed=5)
    out = create_backend(spec).open(apply_probe_plan(model, plan)).run(inp.arrays)
    return {**inp.arrays, **out}


def _boundary(proto: onnx.ModelProto, outputs: list[str], stops: set[str]) -> list[str]:
    """Where a backward walk from ``outputs`` stops: at ``stops`` or at graph inputs."""
    prod = {o: nd for nd in proto.graph.node for o in nd.output}
    inits = {i.name for i in proto.graph.initializer}
    found, stack, seen = [], list(outputs), set()
    while stack:
        t = stack.pop()
        if t in seen or not t or t in inits:
            continue
        seen.add(t)
        if t in stops or t not in prod:
            found.append(t)
        else:
            stack.extend(prod[t].input)
    return sorted(found)


def _run(model: ir.Model, feeds: dict[str, np.ndarray], spec: str = "ort") -> dict[str, np.ndarray]:
    onnx.checker.check_model(to_proto(model), full_check=True)
    return create_backend(spec).open(model).run(feeds)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[ir.Model]:
    tmp = tmp_path_factory.mktemp("cuts")
    return [load_model(qdq_residual_model(tmp))] + [load_model(random_qdq_model(tmp, s, 9)) for s in range(5)]


@pytest.mark.parametrize("which", range(6))
def test_random_cuts_reproduce_the_full_models_tensors_exactly(models: list[ir.Model], which: int) -> None:
    model = models[which]
    full = _all_tensors(model)
    proto = to_proto(model)
    acts = _activations(model)
    rng = np.random.default_rng(which)
    for _ in range(6):
        outs = sorted(set(rng.choice(acts[len(acts) // 3 :], size=int(rng.integers(1, 3)))))
        stops = set(rng.choice(acts, size=int(rng.integers(1, 6)))) - set(outs)
        ins = _boundary(proto, outs, stops)
        cut = extract_subgraph(model, ins, outs)
        got = _run(cut, {t: full[t] for t in ins})
        for t in outs:
            np.testing.assert_array_equal(got[t], full[t], err_msg=f"cut {ins} -> {t}")
        assert len(cut.graph) < len(model.graph) or set(ins) <= {"x"}


def test_a_qdq_cut_starts_at_codes_keeps_the_dequantize_and_ends_at_codes(models: list[ir.Model]) -> None:
    model = models[0]
    idx = build_quant_index(model)
    add = idx.op("add")
    ins, outs = quant_boundary(model, list(add.inputs), list(add.outputs))
    assert ins == [q for q in add.q_inputs if q] and outs == [q for q in add.q_outputs if q]
    cut = extract_subgraph(model, ins, outs)
    assert [v.name for v in cut.graph.inputs] == ins and [v.name for v in cut.graph.outputs] == outs
    assert all(v.dtype == ir.DataType.INT8 for v in [*cut.graph.inputs, *cut.graph.outputs])
    first_consumers = {c.op_type for v in cut.graph.inputs for c in v.consumers()}
    assert first_consumers == {"DequantizeLinear"}
    original = {n.name: (n.op_type, [v.name for v in n.outputs]) for n in model.graph}
    assert all(original[n.name] == (n.op_type, [v.name for v in n.outputs]) for n in cut.graph)
    assert "add" in {n.name for n in cut.graph}
    for spec in ("ort", "ort-fused"):
        full = _all_tensors(model, spec)
        got = _run(cut, {t: full[t] for t in ins}, spec)
        np.testing.assert_array_equal(got[outs[0]], full[outs[0]])


def test_islands_share_one_model_and_rename_inputs_computed_inside(models: list[ir.Model]) -> None:
    model = models[0]
    idx = build_quant_index(model)
    ops = [idx.op(n) for n in ("conv1", "conv2", "add")]
    islands = [Island(tuple(q for q in o.q_inputs if q), tuple(q for q in o.q_outputs if q)) for o in ops]
    merged = extract_islands(model, islands)
    conv1_out = ops[0].q_outputs[0]
    assert conv1_out is not None and merged.inputs[conv1_out] == conv1_out + "__in"
    assert conv1_out in [v.name for v in merged.model.graph.outputs]
    full = _all_tensors(model)
    feeds = {merged.inputs[t]: full[t] for isl in islands for t in isl.inputs}
    got = _run(merged.model, feeds)
    for isl, names in zip(islands, merged.outputs, strict=True):
        for t in isl.outputs:
            assert names[t] == t
            np.testing.assert_array_equal(got[t], full[t])
    assert len({n.name for n in merged.model.graph}) == len(list(merged.model.graph))  # shared DQs kept once


def test_an_op_can_be_isolated_beside_a_prefix_that_computes_it(models: list[ir.Model]) -> None:
    """The residual Add isolated (fed the reference's operands) next to a prefix computing its
    operands and its output from x: shared nodes are duplicated, not redirected."""
    model = models[0]
    idx = build_quant_index(model)
    add = idx.op("add")
    add_in = tuple(q for q in add.q_inputs if q)
    add_out = tuple(q for q in add.q_outputs if q)
    merged = extract_islands(model, [Island(add_in, add_out), Island(("x",), add_in + add_out)])
    full = _all_tensors(model)
    # feed the isolated Add different operands than the prefix computes, to tell them apart
    fake = {t: np.roll(full[t], 1, axis=-1) for t in add_in}
    got = _run(merged.model, {"x": full["x"], **{merged.inputs[t]: fake[t] for t in add_in}})
    iso_name = merged.outputs[0][add_out[0]]
    assert iso_name == add_out[0] + "__iso" and merged.outputs[1][add_out[0]] == add_out[0]
    np.testing.assert_array_equal(got[add_out[0]], full[add_out[0]])
    single = _run(extract_subgraph(model, add_in, add_out), fake)
    np.testing.assert_array_equal(got[iso_name], single[add_out[0]])
    assert not np.array_equal(got[iso_name], full[add_out[0]])


def test_cut_errors_name_the_problem(models: list[ir.Model]) -> None:
    model = models[0]
    idx = build_quant_index(model)
    add_out = idx.op("add").q_outputs[0]
    assert add_out is not None
    with pytest.raises(InputError, match="did you mean"):
        extract_subgraph(model, ["x"], [add_out + "x"])
    with pytest.raises(InputError, match="depends on graph input 'x'"):
        extract_subgraph(model, [idx.op("conv2").q_outputs[0] or ""], [add_out])
    weight = next(i for i in to_proto(model).graph.initializer if i.data_type == onnx.TensorProto.INT8)
    with pytest.raises(InputError, match="constant"):
        extract_subgraph(model, [weight.name], [add_out])
    with pytest.raises(InputError, match="at least one output"):
        extract_subgraph(model, ["x"], [])


def test_whole_model_cut_equals_the_model(models: list[ir.Model], tmp_path: Path) -> None:
    model = models[1]
    cut = extract_subgraph(model, ["x"], ["y"])
    full = _all_tensors(model)
    np.testing.assert_array_equal(_run(cut, {"x": full["x"]})["y"], full["y"])


def test_a_fed_input_and_an_isolated_copy_of_the_same_tensor_get_different_names(models: list[ir.Model]) -> None:
    """conv2 isolated (its output computed from a fed c1) and the Add fed the reference's c2,
    next to a prefix that computes c2 from x: three versions of c2 in one model."""
    model = models[0]
    idx = build_quant_index(model)
    conv2, add = idx.op("conv2"), idx.op("add")
    c1, c2 = conv2.q_inputs[0], conv2.q_outputs[0]
    assert c1 is not None and c2 is not None
    add_in = tuple(q for q in add.q_inputs if q)
    add_out = tuple(q for q in add.q_outputs if q)
    islands = [Island((c1,), (c2,)), Island(add_in, add_out), Island(("x",), (c2,))]
    merged = extract_islands(model, islands)
    assert merged.outputs[0][c2] == c2 + "__iso" and merged.outputs[2][c2] == c2
    assert merged.inputs[c2] == c2 + "__in"
    full = _all_tensors(model)
    fake = {t: np.roll(full[t], 2, axis=-1) for t in {c1, *add_in}}
    got = _run(merged.model, {"x": full["x"], **{merged.inputs[t]: v for t, v in fake.items()}})
    np.testing.assert_array_equal(got[c2], full[c2])
    np.testing.assert_array_equal(got[c2 + "__iso"], _run(extract_subgraph(model, [c1], [c2]), {c1: fake[c1]})[c2])
    single_add = _run(extract_subgraph(model, list(add_in), list(add_out)), {t: fake[t] for t in add_in})
    np.testing.assert_array_equal(got[add_out[0]], single_add[add_out[0]])


def test_quant_boundary_moves_float_graph_outputs_to_their_codes(models: list[ir.Model]) -> None:
    model = models[1]  # "y" is the DequantizeLinear of y_QuantizeLinear_Output; float "x" feeds only its Q
    assert quant_boundary(model, ["x"], ["y"]) == (["x_QuantizeLinear_Output"], ["y_QuantizeLinear_Output"])
    ins, outs = quant_boundary(model, ["t0_conv_DequantizeLinear_Output"], ["t0_conv"])
    assert ins == outs == ["t0_conv_QuantizeLinear_Output"]
