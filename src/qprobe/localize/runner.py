"""The runner: executes the state machine's commands against a reference and a target.

Each command is one target run (one model opened on the target and run on the input
set); the runner counts target and reference runs by counting ``Backend.open`` calls.
Every run goes through ``compare.run_traces`` and ``compare.compare_traces``.
``RunModel`` compares the model as given (or probed); the unprobed run's final outputs
are kept, so that a probed run can be checked against them (DESIGN rule 7). ``RunCut``
merges one-op islands and a prefix into one model (``model.extract``), feeds each island
the reference's values of its inputs (taken from the reference runs, or from one extra
reference run with those tensors probed) and compares it on the target scoped to the
cut's nodes (``Backend.scoped``). Arrays of ops that fail in isolation are kept for repro
bundles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend, BackendBase, Capabilities, Session
from qprobe.compare import (
    Capture,
    Comparison,
    TensorComparison,
    TolerancePolicy,
    compare_traces,
    run_traces,
    tensor_values,
)
from qprobe.localize.graph import OpGraph, group_of
from qprobe.localize.progress import RunTicker
from qprobe.localize.state import Command, Outcome, RunCut, RunModel
from qprobe.model.extract import Cutter, Island
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.probe import plan_probes
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.tensors import ProbePlan

# runs independent target runs (thunks) and returns their outcomes in order: a thread pool, or a
# Dask cluster whose workers own the boards (qprobe.execute)
RunMany = Callable[[Sequence[Callable[[], Outcome]]], Sequence[Outcome]]


@dataclass
class RunCounter:
    opened: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> None:
        with self.lock:  # runs may go concurrently (several boards)
            self.opened += 1


class CountedBackend(BackendBase):
    """A backend wrapper that counts ``open`` calls (one per run on the input set); scoped copies
    for cuts share the count."""

    def __init__(self, backend: Backend, counter: RunCounter | None = None) -> None:
        self.backend = backend
        self.spec, self.spec_options = backend.spec, backend.spec_options
        self.counter = counter or RunCounter()

    @property
    def opened(self) -> int:
        return self.counter.opened

    def capabilities(self) -> Capabilities:
        return self.backend.capabilities()

    def open(self, model: ir.Model) -> Session:
        self.counter.count()
        return self.backend.open(model)

    def scoped(self, nodes: Collection[str]) -> CountedBackend:
        inner = self.backend.scoped(nodes)
        return self if inner is self.backend else CountedBackend(inner, self.counter)

    def bind(self, model: ir.Model) -> None:
        self.backend.bind(model)

    def recorded_inputs(self, model: ir.Model) -> dict[str, np.ndarray] | None:
        return self.backend.recorded_inputs(model)

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None:
        return self.backend.fusion_groups(model)


@dataclass(frozen=True)
class _Unit:
    """What one island of a cut isolates: an op, or a group of ops (``members``)."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class IsolatedArrays:
    """One op run in isolation: its reference inputs, the reference's and the target's outputs."""

    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]


class LocalizeRunner:
    def __init__(
        self, model: ir.Model, index: QuantIndex, graph: OpGraph, ref: Backend, target: Backend,
        inputs: InputSet, *, policy: TolerancePolicy | None = None, batch_size: int = 64,
    ) -> None:
        self.model, self.index, self.graph = model, index, graph
        self.ref, self.target = CountedBackend(ref), CountedBackend(target)
        self.inputs = inputs
        self.policy = policy or TolerancePolicy()
        self.batch_size = batch_size
        self.cutter = Cutter(model)
        self.ref_values: dict[str, np.ndarray] = dict(inputs.arrays)
        self.boundaries = {t for o in graph.ops for t in o.inputs}
        self.plain: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.isolated_arrays: dict[str, IsolatedArrays] = {}
        self.ticker: RunTicker | None = None

    @property
    def target_runs(self) -> int:
        return self.target.opened

    @property
    def reference_runs(self) -> int:
        return self.ref.opened

    def execute_many(self, cmds: Sequence[Command], runner: RunMany | None = None) -> list[Outcome]:
        """Independent commands, concurrently: the reference values every cut needs are made
        first (one reference run), then ``runner`` (default: a thread pool as wide as the
        target's declared concurrency) runs the commands; outcomes come back in order."""
        needed = {t for c in cmds if isinstance(c, RunCut) for t in self._cut_inputs(c)}
        self._ensure_reference(needed)
        thunks = [partial(self.execute, c) for c in cmds]
        if runner is not None:
            return list(runner(thunks))
        width = max(1, min(len(thunks), self.target.capabilities().concurrency))
        with ThreadPoolExecutor(max_workers=width) as pool:
            return list(pool.map(lambda f: f(), thunks))

    def _cut_inputs(self, cmd: RunCut) -> set[str]:
        ins = {t for n in cmd.isolate for t in self.graph.op(n).inputs}
        return ins | {t for g in cmd.groups for t in group_of(self.graph, g).inputs}

    def execute(self, cmd: Command) -> Outcome:
        if self.ticker is not None:  # progress: each run numbered and timed as it happens
            return self.ticker.wrap(self._execute)(cmd)
        return self._execute(cmd)

    def _execute(self, cmd: Command) -> Outcome:
        return self._run_model(cmd) if isinstance(cmd, RunModel) else self._run_cut(cmd)

    # -- the model, as given or probed -------------------------------------------------------

    def _compare(self, model: ir.Model, target: Backend, plan: ProbePlan | None, inputs: InputSet,
                 cap: Capture) -> Comparison:
        """One reference run and one target run of ``model`` compared, arrays captured."""
        index = self.index if model is self.model else None
        streams = [run_traces(b, model, plan, inputs, self.batch_size, index=index) for b in (self.ref, target)]
        with closing(streams[0]), closing(streams[1]):
            return compare_traces(streams[0], streams[1], self.policy, index=index or build_quant_index(model),
                                  on_batch=cap)

    def _run_model(self, cmd: RunModel) -> Outcome:
        outs = graph_output_names(self.model)
        plan = plan_probes(self.model, self.index, [*outs, *cmd.probes]) if cmd.probes else None
        cap = Capture(set(outs) | (self.boundaries & set(cmd.probes)), set(outs))
        cmp = self._compare(self.model, self.target, plan, self.inputs, cap)
        ref_arrays, tgt_arrays = cap.ref, cap.target
        self.ref_values.update({k: v for k, v in ref_arrays.items() if k in self.boundaries})
        changed, notes = None, []
        if not cmd.probes:
            self.plain = (ref_arrays, tgt_arrays)
        elif self.plain is not None and self.target.capabilities().accepts_models:
            changed = tuple(o for o in outs if not np.array_equal(tgt_arrays[o], self.plain[1][o], equal_nan=True))
            ref_changed = [o for o in outs if not np.array_equal(ref_arrays[o], self.plain[0][o], equal_nan=True)]
            if ref_changed:
                notes.append(f"probing changed the reference's final outputs too ({', '.join(ref_changed)}): "
                             f"{self.ref.spec} fuses differently when tensors are exposed")
        return Outcome(accumulated={r.name: r for r in cmp.rows}, changed_outputs=changed, notes=tuple(notes))

    # -- cuts: one-op islands fed with the reference's inputs, and a prefix -----------------------

    def _run_cut(self, cmd: RunCut) -> Outcome:
        units = [_Unit(o.name, o.op_type, o.inputs, o.outputs) for o in map(self.graph.op, cmd.isolate)]
        groups = [group_of(self.graph, g) for g in cmd.groups]
        units += [_Unit(g.name, "+".join(self.graph.op(n).op_type for n in g.ops), g.inputs, g.outputs, g.ops)
                  for g in groups]
        islands = [Island(u.inputs, u.outputs) for u in units]
        if cmd.prefix:
            islands.append(Island(self.graph.graph_inputs, cmd.prefix))
        merged = self.cutter.islands(islands)
        self._ensure_reference({t for u in units for t in u.inputs})
        feeds = {name: self.ref_values[t] for t, name in merged.inputs.items()}
        cap = Capture([n for names in merged.outputs[: len(units)] for n in names.values()])
        target = self.target.scoped([str(n.name) for n in merged.model.graph])
        cmp = self._compare(merged.model, target, None, InputSet(feeds, "the reference's values at the cut inputs"),
                            cap)
        rows = {r.name: r for r in cmp.rows}
        isolated: dict[str, TensorComparison] = {}
        by_group: dict[tuple[str, ...], dict[str, TensorComparison]] = {}
        notes: list[str] = []
        for unit, names in zip(units, merged.outputs, strict=False):
            found = {t: replace(rows[n], name=t, producer=unit.name, op_type=unit.op_type) for t, n in names.items()}
            (by_group.setdefault(unit.members, {}) if unit.members else isolated).update(found)
            notes += [f"{self.ref.spec} computes {t} differently in the cut of {unit.name} than in the whole model "
                      "(it fuses differently); isolated errors compare like with like"
                      for t, n in names.items() if t in self.ref_values
                      and not np.array_equal(cap.ref[n], self.ref_values[t])]
            if any(r.failed for r in found.values()):
                self._keep(unit, names, cap.ref, cap.target)
        prefix_names = merged.outputs[-1] if cmd.prefix else {}
        accumulated = {t: replace(rows[n], name=t) for t, n in prefix_names.items()}
        return Outcome(accumulated=accumulated, isolated=isolated, notes=tuple(notes), groups=by_group)

    def _keep(self, unit: _Unit, names: Mapping[str, str], ref_out: Mapping[str, np.ndarray],
              tgt_out: Mapping[str, np.ndarray]) -> None:
        self.isolated_arrays[unit.name] = IsolatedArrays(
            inputs={t: self.ref_values[t] for t in unit.inputs},
            expected={t: ref_out[n] for t, n in names.items()},
            observed={t: tgt_out[n] for t, n in names.items()},
        )

    def _ensure_reference(self, tensors: set[str]) -> None:
        """Reference values of ``tensors`` in the whole model (one reference run if any is missing)."""
        missing = sorted(tensors - self.ref_values.keys())
        if missing:
            self.ref_values.update(tensor_values(self.ref, self.model, missing, self.inputs, self.batch_size,
                                                 index=self.index))
