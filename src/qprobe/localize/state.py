"""The localization state machine's vocabulary: commands, outcomes, what is known so far.

A strategy is a generator: it *yields* a ``Command`` (one target run), receives the
run's ``Outcome`` and finally *returns* a ``Divergence``. It does no I/O: a runner
executes the commands against real backends, and a test can drive it with scripted
outcomes. ``drive`` connects the two.

Every command is exactly one target run:
  ``RunModel(probes)``   the model as given plus ``probes`` as extra outputs (accumulated error);
  ``RunCut(isolate, prefix)``  one model made of independent islands: a one-op cut for each op of
                         ``isolate``, fed with the reference's values of its inputs (local error),
                         and a prefix cut computing the ``prefix`` tensors from the graph inputs
                         (accumulated error). The islands must not share computing nodes, so an op
                         is never isolated in the run whose prefix computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qprobe.compare.result import TensorComparison
from qprobe.localize.graph import OpGraph, OpGroup, OpNode, group_of


@dataclass(frozen=True)
class RunModel:
    probes: tuple[str, ...] = ()
    purpose: str = ""

    def num_outputs(self, graph: OpGraph) -> int:
        return len(set(graph.graph_outputs) | set(self.probes))


@dataclass(frozen=True)
class RunCut:
    isolate: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ()
    purpose: str = ""
    groups: tuple[tuple[str, ...], ...] = ()  # each group of ops isolated as one island

    def num_outputs(self, graph: OpGraph) -> int:
        return (sum(len(graph.op(o).outputs) for o in self.isolate) + len(self.prefix)
                + sum(len(group_of(graph, g).outputs) for g in self.groups))


Command = RunModel | RunCut
# a machine yields one command, or a tuple of independent commands that may run at once
# (a target with ``concurrency`` > 1: several boards); it then receives one Outcome or a tuple
Step = Command | tuple[Command, ...]


@dataclass(frozen=True)
class Outcome:
    """What one target run showed, as comparison rows keyed by tensor name.

    ``changed_outputs``: for a probed ``RunModel``, the final outputs whose target values
    differ from the unprobed run (None when not checked).
    """

    accumulated: Mapping[str, TensorComparison] = field(default_factory=dict)
    isolated: Mapping[str, TensorComparison] = field(default_factory=dict)
    changed_outputs: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    groups: Mapping[tuple[str, ...], Mapping[str, TensorComparison]] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetTraits:
    """The target's declared capabilities that planning needs (from ``backends.Capabilities``)."""

    max_outputs: int | None = None
    cost_per_run_s: float = 0.0
    accepts_models: bool = True
    available_tensors: frozenset[str] | None = None
    groups: tuple[tuple[str, ...], ...] = ()  # node groups the target says it runs as one kernel
    concurrency: int = 1  # target runs that may go at once

    @property
    def outputs_per_run(self) -> float:
        return float("inf") if self.max_outputs is None else max(1, self.max_outputs)


@dataclass
class Knowledge:
    """What the runs so far have shown (mutable, private to one machine run)."""

    graph: OpGraph
    accumulated: dict[str, TensorComparison] = field(default_factory=dict)
    isolated: dict[str, TensorComparison] = field(default_factory=dict)
    runs: list[tuple[Command, tuple[str, ...]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plain_done: bool = False
    probes_trusted: bool = True
    fallback: str = ""
    groups: dict[tuple[str, ...], dict[str, TensorComparison]] = field(default_factory=dict)
    culprit_group: OpGroup | None = None

    def record(self, cmd: Command, out: Outcome, trust_accumulated: bool = True) -> None:
        failing = tuple(n for n, r in {**out.accumulated, **out.isolated}.items() if r.failed)
        self.runs.append((cmd, failing))
        if trust_accumulated:
            self.accumulated.update(out.accumulated)
        self.isolated.update(out.isolated)
        for g, rows in out.groups.items():
            self.groups.setdefault(g, {}).update(rows)
        self.notes.extend(n for n in out.notes if n not in self.notes)
        if isinstance(cmd, RunModel) and not cmd.probes:
            self.plain_done = True

    @property
    def target_runs(self) -> int:
        return len(self.runs)

    def acc_failed(self, op: OpNode) -> bool | None:
        rows = [self.accumulated[t] for t in op.outputs if t in self.accumulated]
        return any(r.failed for r in rows) if rows else None

    def iso_failed(self, op: OpNode) -> bool | None:
        rows = [self.isolated[t] for t in op.outputs if t in self.isolated]
        return any(r.failed for r in rows) if rows else None

    def group_failed(self, group: tuple[str, ...]) -> bool | None:
        rows = self.groups.get(group)
        return any(r.failed for r in rows.values()) if rows else None

    def failing_outputs(self) -> list[str]:
        return [o for o in self.graph.graph_outputs if o in self.accumulated and self.accumulated[o].failed]


def run_wave(k: Knowledge, cmds: Sequence[Command]) -> Generator[Any, Any, tuple[Outcome, ...]]:
    """Independent commands: one at a time, or all at once as a tuple (the runner may overlap
    them on a target with several boards); each is recorded in order."""
    outs: tuple[Outcome, ...] = ((yield cmds[0]),) if len(cmds) == 1 else tuple((yield tuple(cmds)))
    for cmd, out in zip(cmds, outs, strict=True):
        k.record(cmd, out)
    return outs


def waves(items: Sequence[Any], concurrency: int) -> list[Sequence[Any]]:
    n = max(1, concurrency)
    return [items[i : i + n] for i in range(0, len(items), n)]


R = TypeVar("R")


def drive(
    machine: Generator[Any, Any, R], execute: Callable[[Command], Outcome],
    execute_many: Callable[[Sequence[Command]], Sequence[Outcome]] | None = None,
) -> R:
    """Run ``machine`` to completion, executing each command it yields (a tuple of independent
    commands with ``execute_many``, one after the other without it); return its result."""
    many = execute_many or (lambda cmds: [execute(c) for c in cmds])
    try:
        step = next(machine)
        while True:
            step = machine.send(tuple(many(step)) if isinstance(step, tuple) else execute(step))
    except StopIteration as stop:
        return stop.value
