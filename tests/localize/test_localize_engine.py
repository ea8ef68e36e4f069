"""localize() against the integer engine: defects injected through per-node profile overrides.

Oracle: the overridden node. A case counts only when the override is visible where it is
injected (in a plain comparison of the whole model, the first failing tensor is that
node's output): an override that changes nothing is no defect to find.
"""

from __future__ import annotations

import onnx_ir as ir
import pytest

from qprobe.backends import create_backend
from qprobe.compare import compare_backends
from qprobe.examples.generated import random_inputs as generated_inputs
from qprobe.examples.generated import random_qdq_model
from qprobe.localize import OpGraph, build_op_graph, localize
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_from_proto
from qprobe.model.quant import build_quant_index

# knobs that give a large error on these op types (wrapping accumulators, power-of-two multipliers)
DEFECTS = {
    "Conv": {"acc_bits": "10", "acc_overflow": "wrap"},
    "MatMul": {"acc_bits": "10", "acc_overflow": "wrap"},
    "Mul": {"acc_bits": "10", "acc_overflow": "wrap"},
    "Add": {"scale": "pow2"},
}


def _overrides(nodes: list[str], graph: OpGraph) -> dict[str, str]:
    return {f"nodes.{n}.{k}": v for n in nodes for k, v in DEFECTS[graph.op(n).op_type].items()}


def _cases(count: int) -> list[tuple[ir.Model, InputSet, str, bool]]:
    """(model, inputs, defective node, final output fails) for the first ``count`` visible defects."""
    out = []
    ref = create_backend("ort-fused")
    for seed in range(40):
        proto = random_qdq_model(seed, num_ops=8, ops=("Conv", "Add", "Mul", "MatMul", "Relu", "Concat"))
        m = model_from_proto(proto)
        g = build_op_graph(m, build_quant_index(m))
        inp = InputSet(generated_inputs(proto, 8, seed), f"generated(seed={seed})")
        victims = [o.name for o in g.ops if o.op_type in DEFECTS]
        if not victims:
            continue
        victim = victims[seed % len(victims)]
        tgt = create_backend("engine:onnxruntime", _overrides([victim], g))
        cmp = compare_backends(m, ref, tgt, inp, check_probe_effect=False)
        first = cmp.first_failing
        if first is not None and first.name in g.op(victim).outputs:
            out.append((m, inp, victim, cmp.row(cmp.rows[-1].name).failed))
        if len(out) == count:
            return out
    raise AssertionError(f"only {len(out)} random models with a visible defect")


CASES = _cases(6)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_strategy_names_the_node_with_the_injected_override(case: int) -> None:
    m, inp, victim, output_fails = CASES[case]
    g = build_op_graph(m, build_quant_index(m))
    for strategy in ("probe-all", "isolate", "bisect"):
        tgt = create_backend("engine:onnxruntime", _overrides([victim], g))
        d = localize(m, create_backend("ort-fused"), tgt, inp, strategy=strategy).divergence
        if strategy == "bisect" and not output_fails:
            assert d.culprit is None and any("final outputs pass" in n for n in d.notes)
            continue
        assert d.culprit is not None and d.culprit.op == victim, (strategy, d.verdict())
        assert d.introducers() == () and all(f.role == "carrier" for f in d.later), strategy
        assert d.within_budget


def test_a_second_override_downstream_introduces_its_own_error() -> None:
    m, inp, victim, _ = CASES[0]
    g = build_op_graph(m, build_quant_index(m))
    later = [o.name for o in g.downstream(victim) if o.op_type in DEFECTS]
    if not later:
        pytest.skip("no overridable op downstream in this model")
    tgt = create_backend("engine:onnxruntime", _overrides([victim, later[-1]], g))
    d = localize(m, create_backend("ort-fused"), tgt, inp, strategy="probe-all").divergence
    assert d.culprit is not None and d.culprit.op == victim
    assert later[-1] in d.introducers() or later[-1] in [f.op for f in d.later if f.role == "carrier"]


def test_a_qoperator_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    """QLinearConv/QLinearAdd/QGemm (com.microsoft ops that shape inference cannot type)."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from models.residual import float_residual_model

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            data = np.random.default_rng(1).uniform(0, 1, (8, 3, 8, 8)).astype(np.float32)
            self._it = iter([{"x": data[i : i + 1]} for i in range(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    tmp = tmp_path_factory.mktemp("qop")
    onnx.save(float_residual_model(0), tmp / "f.onnx")
    quantize_static(str(tmp / "f.onnx"), str(tmp / "q.onnx"), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    from qprobe.model.inputs import random_inputs
    from qprobe.model.loader import load_model

    m = load_model(tmp / "q.onnx")
    assert "QLinearAdd" in {n.op_type for n in m.graph}
    for strategy in ("probe-all", "isolate", "bisect"):
        tgt = create_backend("engine:onnxruntime", {"nodes.conv2_quant.scale": "pow2"})
        d = localize(m, create_backend("ort-fused"), tgt, random_inputs(m, 4, 0), strategy=strategy).divergence
        assert d.culprit is not None and (d.culprit.op, d.culprit.op_type) == ("conv2_quant", "QLinearConv"), strategy
        assert d.introducers() == () and {"gap_quant", "gemm_quant"} <= set(d.carriers()), strategy
