"""The runner: executes the state machine's commands against a reference and a target.

Each command is one target run (one model opened on the target and run on the input
set); the runner counts target and reference runs by counting ``Backend.open`` calls.
``RunModel`` compares the model as given (or probed) with ``compare_backends``; the
unprobed run's final outputs are kept, so that a probed run can be checked against them
(DESIGN rule 7). ``RunCut`` merges one-op islands and a prefix into one model
(``model.extract``), feeds each island the reference's values of its inputs (taken from
the reference runs, or from one extra reference run with those tensors probed) and
compares it. Arrays of ops that fail in isolation are kept for repro bundles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend, BackendBase, Capabilities, Session
from qprobe.compare import TensorComparison, TolerancePolicy, compare_backends
from qprobe.localize.graph import OpGraph, OpNode
from qprobe.localize.state import Command, Outcome, RunCut, RunModel
from qprobe.model.extract import Cutter, Island
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import QuantIndex
from qprobe.tensors import Trace


class CountedBackend(BackendBase):
    """A backend wrapper that counts ``open`` calls (one per run on the input set)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.spec = backend.spec
        self.opened = 0

    def capabilities(self) -> Capabilities:
        return self.backend.capabilities()

    def open(self, model: ir.Model) -> Session:
        self.opened += 1
        return self.backend.open(model)

    def bind(self, model: ir.Model) -> None:
        self.backend.bind(model)

    def recorded_inputs(self, model: ir.Model) -> dict[str, np.ndarray] | None:
        return self.backend.recorded_inputs(model)

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None:
        return self.backend.fusion_groups(model)


@dataclass(frozen=True)
class IsolatedArrays:
    """One op run in isolation: its reference inputs, the reference's and the target's outputs."""

    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]


@dataclass
class Capture:
    """Collects the arrays of chosen tensors from each batch's traces."""

    ref_names: set[str]
    tgt_names: set[str]
    ref: dict[str, list[np.ndarray]] = field(default_factory=dict)
    tgt: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def __call__(self, r: Trace, t: Trace) -> None:
        for names, trace, store in ((self.ref_names, r, self.ref), (self.tgt_names, t, self.tgt)):
            for n in names & trace.records.keys():
                store.setdefault(n, []).append(np.asarray(trace.records[n].data))

    @staticmethod
    def joined(store: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v, axis=0) for k, v in store.items()}


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

    @property
    def target_runs(self) -> int:
        return self.target.opened

    @property
    def reference_runs(self) -> int:
        return self.ref.opened

    def execute(self, cmd: Command) -> Outcome:
        return self._run_model(cmd) if isinstance(cmd, RunModel) else self._run_cut(cmd)

    # -- the model, as given or probed -------------------------------------------------------

    def _run_model(self, cmd: RunModel) -> Outcome:
        outs = graph_output_names(self.model)
        probe: str | list[str] = [*outs, *cmd.probes] if cmd.probes else "outputs"
        cap = Capture(ref_names=set(outs) | (self.boundaries & set(cmd.probes)), tgt_names=set(outs))
        cmp = compare_backends(
            self.model, self.ref, self.target, self.inputs, probe=probe, policy=self.policy,
            batch_size=self.batch_size, check_probe_effect=False, on_traces=cap,
        )
        ref_arrays, tgt_arrays = cap.joined(cap.ref), cap.joined(cap.tgt)
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
        ops = [self.graph.op(n) for n in cmd.isolate]
        islands = [Island(o.inputs, o.outputs) for o in ops]
        if cmd.prefix:
            islands.append(Island(self.graph.graph_inputs, cmd.prefix))
        merged = self.cutter.islands(islands)
        self._ensure_reference({t for o in ops for t in o.inputs})
        feeds = {name: self.ref_values[t] for t, name in merged.inputs.items()}
        iso_names = [n for names in merged.outputs[: len(ops)] for n in names.values()]
        cap = Capture(ref_names=set(iso_names), tgt_names=set(iso_names))
        cmp = compare_backends(
            merged.model, self.ref, self.target, InputSet(feeds, "the reference's values at the cut inputs"),
            probe="outputs", policy=self.policy, batch_size=self.batch_size, check_probe_effect=False,
            on_traces=cap,
        )
        rows = {r.name: r for r in cmp.rows}
        ref_out, tgt_out = cap.joined(cap.ref), cap.joined(cap.tgt)
        isolated: dict[str, TensorComparison] = {}
        notes: list[str] = []
        for op, names in zip(ops, merged.outputs, strict=False):
            for t, n in names.items():
                isolated[t] = replace(rows[n], name=t, producer=op.name, op_type=op.op_type)
                if t in self.ref_values and not np.array_equal(ref_out[n], self.ref_values[t]):
                    notes.append(f"{self.ref.spec} computes {t} differently in the one-op cut of {op.name} than in "
                                 "the whole model (it fuses differently); isolated errors compare like with like")
            if any(isolated[t].failed for t in names):
                self._keep(op, names, ref_out, tgt_out)
        prefix_names = merged.outputs[-1] if cmd.prefix else {}
        accumulated = {t: replace(rows[n], name=t) for t, n in prefix_names.items()}
        return Outcome(accumulated=accumulated, isolated=isolated, notes=tuple(notes))

    def _keep(self, op: OpNode, names: Mapping[str, str], ref_out: Mapping[str, np.ndarray],
              tgt_out: Mapping[str, np.ndarray]) -> None:
        self.isolated_arrays[op.name] = IsolatedArrays(
            inputs={t: self.ref_values[t] for t in op.inputs},
            expected={t: ref_out[n] for t, n in names.items()},
            observed={t: tgt_out[n] for t, n in names.items()},
        )

    def _ensure_reference(self, tensors: set[str]) -> None:
        """Reference values of ``tensors`` in the whole model (one reference run if any is missing)."""
        missing = sorted(tensors - self.ref_values.keys())
        if not missing:
            return
        probed = apply_probe_plan(self.model, plan_probes(self.model, self.index, missing))
        session = self.ref.open(probed)
        parts: dict[str, list[np.ndarray]] = {}
        try:
            for first, feeds in self.inputs.batches(self.batch_size):
                out = session.run(feeds, first_sample=first)
                for t in missing:
                    parts.setdefault(t, []).append(np.asarray(out[t]))
        finally:
            session.close()
        self.ref_values.update(Capture.joined(parts))
