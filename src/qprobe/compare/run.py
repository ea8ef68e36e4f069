"""Run a reference and a target on the same samples and compare them tensor by tensor.

Samples go through in batches; per-tensor metrics accumulate and merge, so at most one
batch of all probed tensors is in memory. A backend that wants all samples in one run
(hardware in the loop: ``batch_size=None`` with a cost per run) is run once and sliced.
When probing added outputs, the final outputs of a probed and an unprobed run are
compared for each backend that runs models (DESIGN rule 7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend, Session
from qprobe.compare.policy import TolerancePolicy
from qprobe.compare.result import Comparison, ProbeEffect, TensorComparison
from qprobe.errors import BackendError, InputError
from qprobe.metrics import LsbAccumulator, StAccumulator, looks_like_probabilities
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.tensors import ProbePlan, QuantParams, TensorRecord, Trace

Progress = Callable[[int, int], None]


@dataclass
class _TensorAcc:
    st: StAccumulator
    lsb: LsbAccumulator | None
    quant: QuantParams | None
    auto_classifier: bool = False

    def add(self, ref: np.ndarray, tgt: np.ndarray, name: str) -> None:
        if ref.size != tgt.size:
            raise BackendError(
                f"tensor {name!r}: reference has {ref.size} elements {ref.shape}, "
                f"target {tgt.size} {tgt.shape}; the target returned a different shape"
            )
        tgt = tgt.reshape(ref.shape)
        q = self.quant
        both_codes = np.issubdtype(ref.dtype, np.integer) and np.issubdtype(tgt.dtype, np.integer)
        # ST dequantizes both sides with the reference's params, in float32
        r_real = q.dequantize_f32(ref) if q is not None and np.issubdtype(ref.dtype, np.integer) else ref
        t_real = q.dequantize_f32(tgt) if q is not None and np.issubdtype(tgt.dtype, np.integer) else tgt
        self.st.add(r_real, t_real)
        if self.lsb is not None:
            self.lsb.add(ref, tgt) if both_codes else self.lsb.add(r_real, t_real)


class _Runner:
    """Runs one backend on one model, per batch or once for all samples."""

    def __init__(self, backend: Backend, model: ir.Model, inputs: InputSet, plan: ProbePlan | None = None) -> None:
        self.backend = backend
        self.plan = plan or ProbePlan("outputs", tuple(graph_output_names(model)))
        self.session: Session = backend.open(model)
        caps = backend.capabilities()
        self._whole: dict[str, np.ndarray] | None = None
        if caps.batch_size is None and caps.cost_per_run_s > 0:
            self._whole = self.session.run(inputs.arrays, first_sample=0)

    def run(self, first: int, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._whole is not None:
            n = next(iter(feeds.values())).shape[0]
            return {k: v[first : first + n] for k, v in self._whole.items()}
        return self.session.run(feeds, first_sample=first)

    def trace(self, first: int, feeds: Mapping[str, np.ndarray], index: QuantIndex) -> Trace:
        """One batch as a Trace: the plan's tensors with their quantization, plus provenance."""
        out = self.run(first, feeds)
        records = {t: TensorRecord(t, np.asarray(out[t]), index.quant_of(t)) for t in self.plan.tensors if t in out}
        return Trace(self.backend.spec, self.plan, records, dict(self.session.info), first)

    def close(self) -> None:
        self.session.close()


def compare_backends(
    model: ir.Model,
    ref: Backend,
    target: Backend,
    inputs: InputSet | None,
    *,
    probe: str | Sequence[str] = "op-outputs",
    policy: TolerancePolicy | None = None,
    batch_size: int = 64,
    classifier: bool | None = None,
    check_probe_effect: bool = True,
    progress: Progress | None = None,
    model_name: str = "",
    on_traces: Callable[[Trace, Trace], None] | None = None,
) -> Comparison:
    """Compare ``target`` against ``ref`` on ``inputs`` over the probed tensors.

    ``on_traces`` receives each batch's (reference, target) Traces, e.g. to save them.
    """
    index = build_quant_index(model)
    for b in (ref, target):
        b.bind(model)
    inputs = inputs or recorded_input_set(model, ref, target)
    plan = _restrict(plan_probes(model, index, probe), ref, target)
    probed = apply_probe_plan(model, plan)
    runners = {"ref": _Runner(ref, probed, inputs, plan), "target": _Runner(target, probed, inputs, plan)}
    plain = _plain_runners(model, plan, inputs, {"ref": ref, "target": target}, check_probe_effect)
    accs = {t: _make_acc(t, index, classifier, model) for t in plan.tensors}
    try:
        changed = _run_batches(runners, plain, accs, index, inputs, batch_size, progress, on_traces)
    finally:
        for rn in [*runners.values(), *plain.values()]:
            rn.close()
    effects = [
        _effect(rn.backend.spec, changed[role]) if role in plain
        else ProbeEffect(rn.backend.spec, False, (), _no_check_reason(rn.backend, plan))
        for role, rn in runners.items()
    ]
    rows = tuple(_row(t, accs[t], index, policy or TolerancePolicy()) for t in plan.tensors if t in accs)
    return Comparison(
        model=model_name,
        ref=ref.spec,
        target=target.spec,
        num_samples=inputs.num_samples,
        inputs=inputs.source,
        plan=plan,
        rows=rows,
        probe_effects=tuple(effects),
        session_info={role: rn.session.info for role, rn in runners.items()},
    )


def _run_batches(
    runners: Mapping[str, _Runner], plain: Mapping[str, _Runner], accs: dict[str, _TensorAcc], index: QuantIndex,
    inputs: InputSet, batch_size: int, progress: Progress | None, on_traces: Callable[[Trace, Trace], None] | None,
) -> dict[str, set[str]]:
    """Feed every batch to both runners and the accumulators; return, per role, the final
    outputs that differed between the probed and the unprobed run."""
    changed: dict[str, set[str]] = {role: set() for role in plain}
    done = 0
    for first, feeds in inputs.batches(batch_size):
        traces = {role: rn.trace(first, feeds, index) for role, rn in runners.items()}
        _accumulate(accs, traces["ref"], traces["target"])
        if on_traces:
            on_traces(traces["ref"], traces["target"])
        for role, runner in plain.items():
            changed[role] |= _changed_outputs(runner.run(first, feeds), traces[role])
        done += next(iter(feeds.values())).shape[0]
        if progress:
            progress(done, inputs.num_samples)
    return changed


def recorded_input_set(model: ir.Model, *backends: Backend) -> InputSet:
    """The samples a backend recorded (the first that has any), for stages given no inputs."""
    for b in backends:
        arrays = b.recorded_inputs(model)
        if arrays:
            return InputSet(dict(arrays), f"recorded by {b.spec}")
    raise InputError("no input samples: pass --inputs FILE.npz or --random N")


def _restrict(plan: ProbePlan, *backends: Backend) -> ProbePlan:
    keep = list(plan.tensors)
    for b in backends:
        avail = b.capabilities().available_tensors
        if avail is not None:
            keep = [t for t in keep if t in avail]
    if not keep:
        raise InputError("the backends have no tensor in common with the probe plan; nothing to compare")
    return ProbePlan(plan.mode, tuple(keep), tuple(t for t in plan.added_outputs if t in keep))


def _plain_runners(
    model: ir.Model, plan: ProbePlan, inputs: InputSet, roles: Mapping[str, Backend], check: bool
) -> dict[str, _Runner]:
    if not (check and plan.changes_graph):
        return {}
    return {r: _Runner(b, model, inputs) for r, b in roles.items() if b.capabilities().accepts_models}


def _no_check_reason(b: Backend, plan: ProbePlan) -> str:
    if not plan.changes_graph:
        return "no probe added: the graph is unchanged"
    if not b.capabilities().accepts_models:
        return "recorded data: cannot rerun without probes"
    return "not checked"


def _changed_outputs(plain: Mapping[str, np.ndarray], probed: Trace) -> set[str]:
    rec = probed.records
    return {k for k, v in plain.items() if k in rec and not np.array_equal(v, rec[k].data, equal_nan=True)}


def _effect(spec: str, changed: set[str]) -> ProbeEffect:
    if changed:
        return ProbeEffect(spec, True, tuple(sorted(changed)), "probing changed the final outputs")
    return ProbeEffect(spec, True, (), "final outputs identical with and without probes")


def _make_acc(t: str, index: QuantIndex, classifier: bool | None, model: ir.Model) -> _TensorAcc:
    q = index.quant_of(t)
    is_output = t in graph_output_names(model)
    st = StAccumulator(classifier=bool(classifier) and is_output)
    return _TensorAcc(st, LsbAccumulator(q) if q else None, q, auto_classifier=classifier is None and is_output)


def _accumulate(accs: dict[str, _TensorAcc], ref: Trace, tgt: Trace) -> None:
    for name, acc in accs.items():
        if name not in ref.records or name not in tgt.records:
            missing = ref.backend if name not in ref.records else tgt.backend
            raise BackendError(f"{missing} returned no tensor {name!r} (samples from {ref.first_sample})")
        r, t = ref.records[name].data, tgt.records[name].data
        if acc.auto_classifier and ref.first_sample == 0:
            # ST reports accuracy for outputs that "may represent probabilities"
            acc.st.classifier = looks_like_probabilities(r)
        acc.add(r, t, name)


def _row(name: str, acc: _TensorAcc, index: QuantIndex, policy: TolerancePolicy) -> TensorComparison:
    st = acc.st.result()
    lsb = acc.lsb.result() if acc.lsb else None
    verdict, reason = policy.judge(name, st, lsb)
    op_name = index.op_of_tensor.get(name) or index.producer.get(name, "(input)")
    op_type = next((o.op_type for o in index.ops if o.name == op_name), index.producer_type.get(name, "input"))
    return TensorComparison(name, op_name, op_type, acc.quant, st, lsb, verdict, reason)
