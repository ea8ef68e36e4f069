"""localize() end to end with onnxruntime: a reference, and a target with a known injected defect.

Oracle: the node the defect was injected into (DefectTarget adds an offset after it).
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir
import pytest
from defect_target import DefectTarget

from qprobe.backends import Capabilities, create_backend
from qprobe.compare import compare_backends
from qprobe.localize import localize
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model

from models.random_qdq import random_qdq_model
from models.residual import qdq_residual_model

DOWNSTREAM_OF_CONV2 = ["add", "gap", "flatten", "gemm"]


@pytest.fixture(scope="module")
def residual(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(qdq_residual_model(tmp_path_factory.mktemp("m")))


@pytest.mark.parametrize("strategy", ["probe-all", "isolate", "bisect", "auto"])
def test_each_strategy_finds_the_defective_conv_and_the_carriers(residual: ir.Model, strategy: str) -> None:
    tgt = DefectTarget(["conv2"], 0.5)
    loc = localize(residual, create_backend("ort"), tgt, random_inputs(residual, 6, 1), strategy=strategy)
    d = loc.divergence
    assert d.culprit is not None and (d.culprit.op, d.culprit.op_type) == ("conv2", "Conv")
    assert d.culprit.isolated[0].failed and d.culprit.isolated[0].lsb is not None
    assert d.culprit.isolated[0].lsb.mean_delta_lsb < -1  # the offset makes the target high
    assert list(d.carriers()) == DOWNSTREAM_OF_CONV2 and d.introducers() == ()
    assert d.target_runs == len(tgt.opened_models)  # one open per target run
    assert {r.name for r in d.culprit_inputs} == {"c1_QuantizeLinear_Output"}
    assert not any(r.failed for r in d.culprit_inputs)
    assert "conv2" in loc.isolated and set(loc.isolated["conv2"].inputs) == {"c1_QuantizeLinear_Output"}


def test_bisect_on_a_one_output_target_opens_one_output_models_within_budget(residual: ir.Model) -> None:
    caps = Capabilities(max_outputs_per_run=1, cost_per_run_s=90.0)
    tgt = DefectTarget(["add"], -0.7, caps)
    d = localize(residual, create_backend("ort"), tgt, random_inputs(residual, 6, 1)).divergence
    assert d.strategy == "bisect" and "at most 1 outputs" in d.reason
    assert d.culprit is not None and d.culprit.op == "add"
    assert d.budget == 5 and d.target_runs <= 5  # 7 candidate ops: ceil(log2 7) + 2
    assert all(len(m.graph.outputs) == 1 for m in tgt.opened_models)


def test_a_probe_that_hides_the_defect_is_detected_and_cuts_take_over(residual: ir.Model) -> None:
    tgt = DefectTarget(["conv2"], 0.5, vanish_when_probed=True)
    d = localize(residual, create_backend("ort"), tgt, random_inputs(residual, 6, 1), strategy="probe-all").divergence
    assert d.strategy == "probe-all -> isolate"
    assert any("probing changed the target's final outputs" in n for n in d.notes)
    assert d.final_outputs[0].failed  # the unprobed verdict stands
    assert d.culprit is not None and d.culprit.op == "conv2"


def test_two_defects_the_second_introduces_its_own_error(residual: ir.Model) -> None:
    for strategy in ("probe-all", "isolate", "bisect"):
        tgt = DefectTarget(["conv1", "gemm"], 0.6)
        d = localize(residual, create_backend("ort"), tgt, random_inputs(residual, 6, 2), strategy=strategy).divergence
        assert d.culprit is not None and d.culprit.op == "conv1", strategy
        assert d.introducers() == ("gemm",), strategy
        assert set(d.carriers()) == {"conv2", "add", "gap", "flatten"}, strategy


def test_no_defect_no_divergence(residual: ir.Model) -> None:
    d = localize(residual, create_backend("ort"), create_backend("ort"), random_inputs(residual, 4, 1)).divergence
    assert not d.found and d.verdict().startswith("no divergence")


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_random_models_every_strategy_names_the_injected_node(tmp_path: Path, seed: int) -> None:
    m = load_model(random_qdq_model(tmp_path, seed, 9))
    ops = [n.name for n in m.graph if n.op_type in ("Conv", "Add", "Mul", "AveragePool")]
    victim = ops[seed % len(ops)]
    inp = random_inputs(m, 6, seed)
    output_fails = not compare_backends(m, create_backend("ort"), DefectTarget([victim], 0.8), inp,
                                        probe="outputs").passed
    for strategy in ("probe-all", "isolate", "bisect"):
        tgt = DefectTarget([victim], 0.8)
        d = localize(m, create_backend("ort"), tgt, inp, strategy=strategy).divergence
        if strategy == "bisect" and not output_fails:  # the error is masked before the output
            assert d.culprit is None and any("final outputs pass" in n for n in d.notes)
            continue
        assert d.culprit is not None and d.culprit.op == victim, (strategy, d.verdict())
        assert d.introducers() == (), strategy
        assert d.within_budget and d.target_runs == len(tgt.opened_models)
