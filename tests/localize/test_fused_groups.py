"""Fused groups (issue 8 item 6): a target wrong only on a fused pair, right on each op alone and
when the pair's inner tensor is exposed; localize names the pair with the same evidence and run
accounting as for one op."""

from __future__ import annotations

import onnx_ir as ir
import pytest
from fusing_target import FusingTarget

from qprobe.backends import create_backend
from qprobe.localize import localize
from qprobe.localize.culprit import culprit_cut
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model

from models.residual import qdq_residual_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(qdq_residual_model(tmp_path_factory.mktemp("fused")))


@pytest.mark.parametrize("strategy", ["auto", "probe-all", "isolate", "bisect"])
def test_localize_names_the_fused_pair(model: ir.Model, strategy: str) -> None:
    target = FusingTarget("conv2", "add", 0.7)
    loc = localize(model, create_backend("ort"), target, random_inputs(model, 8, seed=3), strategy=strategy)
    div = loc.divergence
    assert div.culprit is not None and div.culprit.group == ("conv2", "add"), (strategy, div.verdict(), div.notes)
    assert div.culprit.op == "conv2+add" and div.culprit.op_type == "Conv+Add"
    assert "the group {conv2, add} (Conv+Add) diverges in isolation; each op alone is within tolerance" in div.verdict()
    assert any(r.failed for r in div.culprit.isolated)
    assert div.target_runs == len(div.runs) and any(r.groups == (("conv2", "add"),) or ("conv2", "add") in r.groups
                                                    for r in div.runs)
    cut = culprit_cut(model, div, loc.isolated)  # the repro bundle's cut is the pair
    assert {"conv2", "add"} <= {str(n.name) for n in cut.model.graph}


def test_fusion_groups_reported_by_the_target_are_tried_first(model: ir.Model) -> None:
    class Reporting(FusingTarget):
        def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]]:
            return [("conv2", "add")]

    loc = localize(model, create_backend("ort"), Reporting("conv2", "add", 0.7), random_inputs(model, 8, seed=3),
                   strategy="isolate")
    div = loc.divergence
    assert div.culprit is not None and div.culprit.group == ("conv2", "add")
    group_runs = [r for r in div.runs if r.groups]
    assert group_runs[0].groups[0] == ("conv2", "add")
