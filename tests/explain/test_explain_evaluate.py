"""explain's fast evaluation computes what the engine's interpreter computes, hypothesis by hypothesis.

Oracle: ``EngineBackend`` running the one-op model (its own grouping, folded Relu clamp,
kernels) under the composed profile, against explain's direct path (``group_spec`` +
the kernel's formula as a 256 x 256 table, per-input requantization tables, exact
accumulators + requantizer), for a seeded sample of each class's hypothesis space.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from qdq_ops import binary_model

from qprobe.backends import create_backend
from qprobe.backends.engine import EngineBackend
from qprobe.explain.compose import compose
from qprobe.explain.evaluate import AccSet, PairSet, UnarySet, pair_table
from qprobe.explain.opspec import group_spec
from qprobe.explain.space import candidates
from qprobe.localize import build_op_graph
from qprobe.model.extract import Cutter
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_from_proto
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index

RNG = np.random.default_rng(11)


def _sample(op_class: str, op_type: str, n: int) -> list:  # type: ignore[type-arg]
    cands = candidates(op_class, op_type)
    floats = [c for c in cands if c.numerics.compute == "float"]
    return [cands[i] for i in RNG.choice(len(cands), size=n, replace=False)] + floats


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_pair_tables_match_the_interpreter(op: str, relu: bool) -> None:
    model = model_from_proto(binary_model(op, (0.0313726, 2), (0.0162219, 1), (0.0153037, -100 if relu else 3),
                                          k=256, relu=relu))
    gs = group_spec(model, "op")
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    feeds = {"a": a.astype(np.int8), "b": b.astype(np.int8)}
    for c in _sample("eltwise", op, 40):
        engine = EngineBackend(compose(c.base, "eltwise", op, c.numerics)).open(model).run(feeds)["q"]
        np.testing.assert_array_equal(pair_table(gs, c), engine.astype(np.int64).reshape(-1), err_msg=str(c))


def test_mul_and_constant_operands_match_the_interpreter() -> None:
    a = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
    const = RNG.integers(-128, 128, size=(1, 256)).astype(np.int8)
    cases = [("Mul", binary_model("Mul", (0.05, 3), (0.02, -4), (0.01, 2)), {"b": None}),
             ("Add", binary_model("Add", (0.05, 3), (0.11, -4), (0.04, 2), const_b=const), {})]
    for op, proto, extra in cases:
        model = model_from_proto(proto)
        gs = group_spec(model, "op")
        assert len(gs.quantized_inputs) == 2
        feeds = {"a": np.repeat(a, 256, axis=0)}
        if extra:
            feeds["b"] = np.repeat(np.arange(-128, 128).astype(np.int8).reshape(256, 1), 256, axis=1)
        for c in _sample("mul" if op == "Mul" else "eltwise", op, 25):
            engine = EngineBackend(compose(c.base, gs.op_class, op, c.numerics)).open(model).run(feeds)["q"]
            ps = PairSet("op", gs, gs.operand(gs.quantized_inputs[0][0], feeds), gs.operand(gs.quantized_inputs[1][0],
                         feeds), engine, RNG)
            assert ps.full(c)[0].exact == 1.0, c


def _cut_and_inputs(model: ir.Model, inputs: InputSet, node: str) -> tuple[ir.Model, dict[str, np.ndarray]]:
    index = build_quant_index(model)
    op = build_op_graph(model, index).op(node)
    probed = apply_probe_plan(model, plan_probes(model, index, list(op.inputs)))
    ref = create_backend("ort-fused").open(probed).run(inputs.arrays)
    return Cutter(model).cut(op.inputs, op.outputs), {t: ref[t][:8] for t in op.inputs}


def test_conv_accumulator_hypotheses_match_the_interpreter(tcn: tuple[ir.Model, InputSet]) -> None:
    cut, feeds = _cut_and_inputs(*tcn, "block1_conv")
    gs = group_spec(cut, "block1_conv")
    args = [feeds[op.name] if op.const is None and op.name else op.const for op in gs.spec.inputs]
    out_name = gs.spec.outputs[0]
    acc = AccSet("c", gs, args, np.zeros((8, 32, 1, 68), np.int8), RNG)
    for c in _sample("conv", "Conv", 30):
        engine = EngineBackend(compose(c.base, "conv", "Conv", c.numerics)).open(cut).run(feeds)[out_name]
        want = np.moveaxis(engine.astype(np.int64), 1, -1).reshape(-1, 32)
        np.testing.assert_array_equal(acc.predict(c), want, err_msg=str(c))


def test_concat_tables_match_the_interpreter(other_models: dict[str, tuple[ir.Model, InputSet]]) -> None:
    cut, feeds = _cut_and_inputs(*other_models["concat"], "merge")
    gs = group_spec(cut, "merge")
    names = [gs.spec.inputs[i].name for i, _q in gs.quantized_inputs]
    for c in _sample("concat", "Concat", 40):
        engine = EngineBackend(compose(c.base, "concat", "Concat", c.numerics)).open(cut).run(feeds)
        observed = engine[gs.spec.outputs[0]]
        unary = UnarySet("m", gs, [feeds[n] for n in names], observed)
        score, _sig = unary.full(c)
        assert score.exact == 1.0, c
