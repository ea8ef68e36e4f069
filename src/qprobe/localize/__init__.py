"""Localization: which op introduces the error, with as few target runs as possible.

``localize(model, ref, target, inputs)`` builds the op graph, lets the chosen strategy
(a pure state machine, ``strategies.localize_machine``) plan the target runs, executes
them with a ``LocalizeRunner`` and returns a ``Localization``: the ``Divergence`` and the
arrays of the ops that failed in isolation (for repro bundles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import onnx_ir as ir

from qprobe import serde
from qprobe.backends.base import Backend, Capabilities, backend_label, describe_backend
from qprobe.backends.command import run_log
from qprobe.compare import TolerancePolicy
from qprobe.compare.inputs import resolve_inputs
from qprobe.errors import InputError
from qprobe.localize.divergence import Divergence, OpFinding, RunRecord
from qprobe.localize.graph import OpGraph, OpNode, build_op_graph
from qprobe.localize.progress import RunEvent, RunTicker
from qprobe.localize.runner import IsolatedArrays, LocalizeRunner, RunMany
from qprobe.localize.state import Outcome, RunCut, RunModel, TargetTraits, drive
from qprobe.localize.strategies import STRATEGIES, Choice, bisect_budget, choose_strategy, localize_machine
from qprobe.model.inputs import InputSet
from qprobe.model.quant import build_quant_index

__all__ = [
    "STRATEGIES",
    "Choice",
    "Divergence",
    "IsolatedArrays",
    "Localization",
    "OpFinding",
    "OpGraph",
    "OpNode",
    "RunEvent",
    "Outcome",
    "RunCut",
    "RunModel",
    "RunRecord",
    "TargetTraits",
    "bisect_budget",
    "build_op_graph",
    "choose_strategy",
    "drive",
    "localize",
    "localize_machine",
    "traits_of",
]


@dataclass(frozen=True)
class Localization:
    divergence: Divergence
    isolated: dict[str, IsolatedArrays]


def traits_of(caps: Capabilities, groups: Sequence[tuple[str, ...]] = ()) -> TargetTraits:
    return TargetTraits(caps.max_outputs_per_run, caps.cost_per_run_s, caps.accepts_models, caps.available_tensors,
                        tuple(groups), max(1, caps.concurrency))


def localize(
    model: ir.Model,
    ref: Backend,
    target: Backend,
    inputs: InputSet | None,
    *,
    strategy: str = "auto",
    ops: Sequence[str] | None = None,
    classify: bool = True,
    policy: TolerancePolicy | None = None,
    batch_size: int = 64,
    model_name: str = "",
    run_many: RunMany | None = None,
    progress: Callable[[RunEvent], None] | None = None,
) -> Localization:
    """Find the op that introduces the target's error (see ``strategies`` for the methods).

    Independent target runs go at once on a target that declares ``concurrency`` > 1, through
    ``run_many`` (default: a thread pool). ``progress`` gets a ``RunEvent`` as each target run starts
    and ends. Runs a command target takes from its cache count as target runs; the Divergence records
    how many ran (``runs_executed``) and how many came from the cache (``runs_cached``)."""
    index = build_quant_index(model)
    graph = build_op_graph(model, index)
    if not graph.ops:
        raise InputError("the model has no compute op with a non-constant input; nothing to localize")
    inputs = inputs or resolve_inputs(model, None, (ref, target))
    runner = LocalizeRunner(model, index, graph, ref, target, inputs, policy=policy, batch_size=batch_size)
    groups = target.fusion_groups(model) if target.capabilities().accepts_models else None
    traits = traits_of(target.capabilities(), groups or ())
    machine = localize_machine(graph, traits, strategy, ops, classify)
    if progress is not None:
        runner.ticker = RunTicker(progress, _about(graph, traits, strategy, ops), traits.cost_per_run_s)
    cached_before = run_log()[1]
    div = drive(machine, runner.execute, lambda cmds: runner.execute_many(cmds, run_many))
    if runner.target_runs != div.target_runs:  # the machine plans one open per command
        raise AssertionError(f"runner opened the target {runner.target_runs} times for {div.target_runs} commands")
    div = replace(
        div, model=model_name, ref=backend_label(ref), target=backend_label(target), num_samples=inputs.num_samples,
        inputs=inputs.source, reference_runs=runner.reference_runs, runs_cached=run_log()[1] - cached_before,
        policy=(policy or TolerancePolicy()).to_json(),
        provenance=serde.provenance(backends={"ref": describe_backend(ref), "target": describe_backend(target)}),
    )
    return Localization(div, dict(runner.isolated_arrays))


def _about(graph: OpGraph, traits: TargetTraits, strategy: str, ops: Sequence[str] | None) -> float:
    """The target runs the chosen strategy is expected to need (for progress only)."""
    choice = choose_strategy(graph, traits, "isolate" if ops else strategy)
    return choice.estimates[choice.strategy]
