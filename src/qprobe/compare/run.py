"""``compare_backends``: run a reference and a target on the same samples and compare them.

A short composition of the pipeline's stages (DESIGN.md): the quantization view, the probe
plan, ``run_traces`` for each backend (probed, and unprobed when probing changed the graph
or the backend is probe-sensitive, so the verdict is about the model as deployed), and
``compare.accumulate`` + ``compare.finish``. At most one batch of all probed tensors is in
memory per stream.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import replace

import onnx
import onnx_ir as ir

from qprobe import serde
from qprobe.backends.base import Backend, Session, TypedSession, describe_backend
from qprobe.compare.budget import DEFAULT_MEMORY_BUDGET, FASTEST_BATCH, choose_batch_size
from qprobe.compare.compare import Accumulated, Streams, accumulate, finish
from qprobe.compare.inputs import resolve_inputs
from qprobe.compare.policy import TolerancePolicy
from qprobe.compare.result import Comparison
from qprobe.compare.traces import Progress, run_traces, tee
from qprobe.errors import InputError
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_bytes, serialized_once
from qprobe.model.patterns import float_weights_in_qdq
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.model.shapes import inferred, value_types
from qprobe.tensors import ProbePlan, Trace, TraceFolder


def restrict_plan(plan: ProbePlan, *backends: Backend) -> ProbePlan:
    """The plan limited to the tensors every backend can return."""
    keep = list(plan.tensors)
    for b in backends:
        avail = b.capabilities().available_tensors
        if avail is not None:
            keep = [t for t in keep if t in avail]
    if not keep:
        raise InputError("the backends have no tensor in common with the probe plan; nothing to compare")
    return ProbePlan(plan.mode, tuple(keep), tuple(t for t in plan.added_outputs if t in keep))


def unprobed_reason(b: Backend, plan: ProbePlan, check: bool) -> str | None:
    """Why a backend gets no unprobed run (None: it gets one)."""
    caps = b.capabilities()
    if not caps.accepts_models:
        return "recorded data: cannot rerun without probes"
    if not plan.changes_graph:
        return "no probe added: the graph is unchanged"
    if not check and not caps.probe_sensitive:
        return "not checked (check_probe_effect=False)"
    return None


def compare_backends(
    model: ir.Model,
    ref: Backend,
    target: Backend,
    inputs: InputSet | None,
    *,
    probe: str | Sequence[str] = "op-outputs",
    policy: TolerancePolicy | None = None,
    batch_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    classifier: bool | None = None,
    check_probe_effect: bool = True,
    progress: Progress | None = None,
    model_name: str = "",
    on_traces: Callable[[Trace, Trace], None] | None = None,
    save_traces: TraceFolder | None = None,
) -> Comparison:
    """Compare ``target`` against ``ref`` on ``inputs`` over the probed tensors.

    ``on_traces`` receives each batch's probed (reference, target) Traces; ``save_traces``
    saves every stream (probed and unprobed), so that ``compare_traces`` can replay it.
    ``batch_size=None`` chooses the batch from ``memory_budget`` (bytes; ``compare.budget``), at
    most ``FASTEST_BATCH``.
    """
    with serialized_once():  # the model and its probed copy serialized once for all four sessions
        index = build_quant_index(model)
        for b in (ref, target):
            b.bind(model)
        inputs = inputs or resolve_inputs(model, None, (ref, target))
        plan = restrict_plan(plan_probes(model, index, probe), ref, target)
        reasons = {role: unprobed_reason(b, plan, check_probe_effect) for role, b in (("ref", ref), ("target", target))}
        probed, opened, types = _probed_and_types(model, plan, ref, target, batch_size)
        batch = batch_size or choose_batch_size(model, plan, memory_budget, maximum=FASTEST_BATCH, types=types)
        done = _accumulate_runs(model, probed, (ref, target), plan, inputs, batch, index, reasons, opened=opened,
                                progress=progress, classifier=classifier, on_traces=on_traces, save_traces=save_traces)
        prov = serde.provenance(backends={"ref": describe_backend(ref), "target": describe_backend(target)},
                                batch_size=batch, memory_budget=memory_budget)
        cmp = finish(done, policy, model=model_name, inputs=inputs.source, index=index,
                     unchecked={r: why for r, why in reasons.items() if why}, provenance=prov)
        return replace(cmp, notes=tuple(model_notes(model, (ref, target))))


# probe modes whose probed tensors include every activation a run holds (the budget's working set
# is then their largest: ``budget.working_bytes``)
_COVERING_MODES = ("all", "op-outputs")


def _probed_and_types(
    model: ir.Model, plan: ProbePlan, ref: Backend, target: Backend, batch_size: int | None,
) -> tuple[ir.Model, Session | None, Mapping[str, onnx.ValueInfoProto] | None]:
    """The probed copy, the reference's probed session when it was opened here, and the value
    types the batch size is chosen from (None when ``batch_size`` is given).

    When both backends type untyped outputs themselves (onnxruntime), the copy's added outputs
    stay untyped and the types come from the reference's probed session, which the comparison
    opens anyway: no ONNX shape inference, whose first call in a process costs 15-25 ms of
    operator-schema registration (a TCN comparison of 10^2 samples takes ~0.2 s). Otherwise
    one shape inference serves the batch size (and the copy's types, where a backend needs them)."""
    probed: ir.Model | None = None
    if plan.added_outputs and all(b.capabilities().types_outputs for b in (ref, target)):
        probed = apply_probe_plan(model, plan, declare_types=False)
        if batch_size is not None:
            return probed, None, None
        if plan.mode in _COVERING_MODES:
            session = ref.open(probed)
            if isinstance(session, TypedSession):
                return probed, session, session.value_types()
            session.close()
    if batch_size is not None and not plan.added_outputs:
        return model, None, None
    typed = inferred(model_bytes(model))
    if probed is None:
        probed = apply_probe_plan(model, plan, typed)
    return probed, None, value_types(typed, already_inferred=True)


def _accumulate_runs(
    model: ir.Model, probed_model: ir.Model, backends: tuple[Backend, Backend], plan: ProbePlan, inputs: InputSet,
    batch: int,
    index: QuantIndex, reasons: dict[str, str | None], *, opened: Session | None, progress: Progress | None,
    classifier: bool | None, on_traces: Callable[[Trace, Trace], None] | None, save_traces: TraceFolder | None,
) -> Accumulated:
    """Both backends' probed streams (and the unprobed ones ``reasons`` allow) accumulated batch by batch;
    ``probed_model``: ``apply_probe_plan(model, plan)``; ``opened``: the reference's probed session
    when the caller has opened it."""
    ref, target = backends

    def stream(role: str, b: Backend, p: ProbePlan | None,
               prog: Progress | None = None) -> Generator[Trace, None, None]:
        traces = run_traces(b, model, p, inputs, batch, index=index, progress=prog,
                            probed=probed_model if p is not None else None,
                            session=opened if p is not None and role == "ref" else None)
        if save_traces is None:
            return traces
        return tee(traces, lambda t: save_traces.save(role if p is not None else f"{role}.plain", t))

    with ExitStack() as stack:
        if opened is not None:
            stack.callback(opened.close)  # when its stream never starts
        probed = [stack.enter_context(closing(stream(r, b, plan, progress if r == "ref" else None)))
                  for r, b in (("ref", ref), ("target", target))]
        plain = [None if reasons[r] else stack.enter_context(closing(stream(r, b, None)))
                 for r, b in (("ref", ref), ("target", target))]
        return accumulate(Streams(probed[0], probed[1], plain[0], plain[1]), graph_output_names(model),
                          classifier=classifier, on_batch=on_traces)


def model_notes(model: ir.Model, backends: Sequence[Backend]) -> list[str]:
    """What a reader of the comparison must know about the model and these backends."""
    weights = float_weights_in_qdq(model)
    fused = [b.spec for b in backends if b.spec in ("ort-fused", "engine:onnxruntime")]
    if not weights or not fused:
        return []
    return [f"{len(weights)} op(s) keep float weights inside QDQ groups; {' and '.join(fused)} quantize them "
            "per tensor as onnxruntime's optimizer does, unlike the board, OpenVINO and TFLite (use ort as the "
            "reference for the deployed arithmetic)"]
