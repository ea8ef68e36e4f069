"""The localization state machine driven by scripted outcomes (no model, no backend).

Ground truth: the ops that introduce an error. Every strategy must name the first of
them, classify the others, stay within its run budget and never ask a target for more
outputs per run than it declares.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted import ScriptedTarget, chain, dag

from qprobe.errors import InputError
from qprobe.localize import (
    Divergence,
    RunCut,
    RunModel,
    TargetTraits,
    bisect_budget,
    choose_strategy,
    drive,
    localize_machine,
)

ONE_SLOW = TargetTraits(max_outputs=1, cost_per_run_s=120.0)


def run(graph, target: ScriptedTarget, strategy: str, **kw) -> Divergence:  # type: ignore[no-untyped-def]
    return drive(localize_machine(graph, target.traits, strategy, **kw), target)


@pytest.mark.parametrize("strategy", ["probe-all", "isolate", "bisect"])
@pytest.mark.parametrize("defect", [0, 3, 9])
def test_every_strategy_names_the_op_that_introduces_the_error(strategy: str, defect: int) -> None:
    g = chain(10)
    tgt = ScriptedTarget(g, {f"op{defect}"})
    d = run(g, tgt, strategy)
    assert d.found and d.culprit is not None and d.culprit.op == f"op{defect}"
    assert d.culprit.role == "culprit"
    assert set(d.carriers()) == {f"op{k}" for k in range(defect + 1, 10)}
    assert d.introducers() == ()
    assert d.target_runs == len(tgt.commands)
    assert isinstance(tgt.commands[0], RunModel) and tgt.commands[0].probes == ()


def test_probe_all_uses_three_runs_on_an_unlimited_target() -> None:
    g = chain(12)
    d = run(g, ScriptedTarget(g, {"op5"}), "probe-all")
    assert d.target_runs == 3 and [r.kind for r in d.runs] == ["model", "model", "cut"]
    assert [r.name for r in d.culprit_inputs] == ["t4"] and not d.culprit_inputs[0].failed
    assert "its inputs are within tolerance" in d.culprit.basis  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 64), data=st.data())
def test_bisect_on_a_chain_stays_within_ceil_log2_n_plus_2_runs(n: int, data: st.DataObject) -> None:
    defect = data.draw(st.integers(0, n - 1))
    g = chain(n)
    tgt = ScriptedTarget(g, {f"op{defect}"}, ONE_SLOW)
    d = run(g, tgt, "bisect")
    assert d.culprit is not None and d.culprit.op == f"op{defect}"
    assert d.target_runs <= math.ceil(math.log2(n)) + 2 == d.budget
    assert d.within_budget


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_bisect_on_random_dags_stays_within_budget_and_is_right_with_room(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 30))
    parents = [[]] + [sorted(set(data.draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=3))))
                      for k in range(1, n)]
    g = dag(parents)
    defect = data.draw(st.sampled_from([o.name for o in g.ops if o.name in g.ops[-1].upstream] + [g.ops[-1].name]))
    for traits in (ONE_SLOW, TargetTraits(max_outputs=None, cost_per_run_s=120.0)):
        d = run(g, ScriptedTarget(g, {defect}, traits), "bisect")
        searched = [r for r in d.runs if not r.groups]  # the fused-group fallback runs after, beyond the budget
        assert len(searched) <= bisect_budget(n)
        assert len(searched) == d.target_runs or (d.culprit is None or d.culprit.group)  # only when no op was found
        if traits.max_outputs is None:  # leftover candidates are isolated in the confirmation run
            assert d.culprit is not None and d.culprit.op == defect


def test_a_second_defect_downstream_is_classified_as_introducing_its_own_error() -> None:
    g = chain(8)
    for strategy in ("probe-all", "isolate", "bisect"):
        d = run(g, ScriptedTarget(g, {"op2", "op5"}), strategy)
        assert d.culprit.op == "op2", strategy  # type: ignore[union-attr]
        assert d.introducers() == ("op5",), strategy
        assert set(d.carriers()) == {"op3", "op4", "op6", "op7"}, strategy


def test_a_probed_run_that_fixes_the_bug_never_counts_as_a_pass() -> None:
    g = chain(6)
    tgt = ScriptedTarget(g, {"op3"}, probe_changes=True)
    d = run(g, tgt, "probe-all")
    assert d.culprit is not None and d.culprit.op == "op3"
    assert d.strategy == "probe-all -> isolate"
    assert any("probing changed the target's final outputs (y)" in n for n in d.notes)
    acc = {r.name: r.failed for r in d.tensors}  # the probed run's "all pass" was not kept
    assert acc == {"t2": False, "t3": True, "t4": True, "t5": True, "y": True}
    assert [r.name for r in d.final_outputs] == ["y"] and d.final_outputs[0].failed


def test_bisect_with_one_output_per_run_leaves_downstream_ops_unclassified_and_says_so() -> None:
    g = chain(16)
    d = run(g, ScriptedTarget(g, {"op4"}, ONE_SLOW), "bisect")
    assert d.culprit.op == "op4" and d.target_runs <= 6  # type: ignore[union-attr]
    assert {f.role for f in d.later} == {"unclassified"}
    assert any("were not isolated" in n for n in d.notes)


def test_masked_downstream_ops_are_not_failing_carriers() -> None:
    g = chain(6)
    d = run(g, ScriptedTarget(g, {"op1"}, masks={"op3"}), "probe-all")
    assert d.culprit.op == "op1" and d.carriers() == ("op2",)  # type: ignore[union-attr]
    assert any("masked" in n and "op3" in n for n in d.notes)


def test_no_divergence() -> None:
    g = chain(5)
    for strategy in ("probe-all", "isolate", "bisect"):
        d = run(g, ScriptedTarget(g, set()), strategy)
        assert not d.found and d.culprit is None and d.later == ()
        assert d.verdict().startswith("no divergence")
    d = run(g, ScriptedTarget(g, set()), "bisect")
    assert d.target_runs == 1 and any("final outputs pass" in n for n in d.notes)


def test_a_replaying_target_only_gets_model_runs_and_the_culprit_is_unconfirmed() -> None:
    g = chain(5)
    tgt = ScriptedTarget(g, {"op2"}, TargetTraits(accepts_models=False))
    d = run(g, tgt, "auto")
    assert all(isinstance(c, RunModel) for c in tgt.commands)
    assert d.culprit is not None and d.culprit.op == "op2" and d.culprit.role == "unconfirmed"
    with pytest.raises(InputError, match="cannot run on this target"):
        run(g, tgt, "isolate")


def test_isolate_a_chosen_set_and_share_runs_within_the_output_limit() -> None:
    g = chain(10)
    tgt = ScriptedTarget(g, {"op6"}, TargetTraits(max_outputs=3))
    d = run(g, tgt, "isolate", ops=["op5", "op6", "op7", "op8"])
    cuts = [c for c in tgt.commands if isinstance(c, RunCut) and c.isolate]
    assert [c.isolate for c in cuts] == [("op5", "op6", "op7"), ("op8",)]
    assert d.culprit.op == "op6"  # type: ignore[union-attr]
    with pytest.raises(InputError, match="unknown op"):
        run(g, tgt, "isolate", ops=["nope"])
    with pytest.raises(InputError, match="applies to --strategy isolate"):
        run(g, tgt, "bisect", ops=["op5"])
    assert run(g, ScriptedTarget(g, {"op6"}), "auto", ops=["op6"]).strategy == "isolate"


def test_auto_chooses_from_the_declared_capabilities_and_says_why() -> None:
    g = chain(30)
    c = choose_strategy(g, TargetTraits())
    assert c.strategy == "probe-all" and "any number of outputs" in c.reason
    c = choose_strategy(g, ONE_SLOW)
    assert c.strategy == "bisect" and "at most 1 outputs" in c.reason and "bisect 7" in c.reason
    assert choose_strategy(g, TargetTraits(max_outputs=40)).strategy in ("probe-all", "isolate")
    with pytest.raises(InputError, match="unknown strategy"):
        choose_strategy(g, TargetTraits(), "guess")


def test_divergence_round_trips_through_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    g = chain(6)
    d = run(g, ScriptedTarget(g, {"op2", "op4"}), "probe-all")
    d.save(tmp_path / "d.json")
    assert Divergence.load(tmp_path / "d.json") == d


def test_groups_wider_than_one_run_are_not_isolated() -> None:
    """A pair whose two ops both feed ops outside it leaves two tensors; a target returning one
    tensor per run cannot isolate it (hypothesis found this DAG: op10 after op9 and op10)."""
    parents = [[], [0], [0], [0], [0], [0], [0], [0], [0], [3, 4], [1, 2, 5], [9, 10]]
    g = dag(parents)
    tgt = ScriptedTarget(g, {"op10"}, ONE_SLOW)
    d = run(g, tgt, "bisect")  # the scripted target asserts every run is within its outputs
    assert len([r for r in d.runs if not r.groups]) <= bisect_budget(len(parents))
    assert any("leave more tensors than the target returns per run" in n for n in d.notes)
