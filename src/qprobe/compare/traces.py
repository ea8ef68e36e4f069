"""``run_traces``: the one place that opens a backend, loops over batches and yields Traces.

Every stage that needs a backend's tensors (compare, localize, explain, fix, repro
bundles) calls ``run_traces`` and consumes the Traces it yields. The backend is opened on
the model probed by the plan at the first ``next()`` and closed when the iterator is
exhausted or closed (``with closing(...)``, or garbage collection). A backend that wants
every sample in one run (``Capabilities.whole_run``: hardware in the loop) is run once and
its outputs are sliced into the same batches, so consumers see one shape of stream.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence

import numpy as np
import onnx_ir as ir

from qprobe import threads
from qprobe.backends.base import Backend, Session, backend_label
from qprobe.errors import BackendError
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.tensors import ProbePlan, TensorRecord, Trace

Progress = Callable[[int, int], None]


def outputs_plan(model: ir.Model) -> ProbePlan:
    """The plan of an unprobed run: the graph outputs, nothing added."""
    return ProbePlan("outputs", tuple(graph_output_names(model)))


def run_traces(
    backend: Backend,
    model: ir.Model,
    plan: ProbePlan | None,
    inputs: InputSet,
    batch_size: int = 64,
    *,
    index: QuantIndex | None = None,
    progress: Progress | None = None,
    probed: ir.Model | None = None,
    session: Session | None = None,
) -> Generator[Trace, None, None]:
    """Run ``backend`` on ``model`` probed by ``plan`` (None: outputs only), one Trace per batch.

    Each Trace holds the plan's tensors (integer codes with their ``QuantParams`` where the
    tensor is quantized), the session's provenance (with the thread settings of
    ``qprobe.threads``, which are applied first) and the index of its first sample.
    ``index`` (the model's ``QuantIndex``) is built when not given; ``probed``, when given, is
    ``apply_probe_plan(model, plan)`` made once by a caller that runs several backends;
    ``session``, when given, is ``backend.open(probed)`` opened by the caller (closed here).
    """
    plan = plan or outputs_plan(model)
    index = index or build_quant_index(model)
    pools = threads.describe()
    if session is None:
        session = backend.open(probed if probed is not None else apply_probe_plan(model, plan))
    try:
        whole: Mapping[str, np.ndarray] | None = None
        if backend.capabilities().whole_run:
            whole = session.run(inputs.arrays, first_sample=0)
        done = 0
        for first, feeds in inputs.batches(batch_size):
            n = next(iter(feeds.values())).shape[0] if feeds else 0
            if whole is not None:
                out: Mapping[str, np.ndarray] = {k: v[first : first + n] for k, v in whole.items()}
            else:
                out = session.run(feeds, first_sample=first)
            yield _trace(backend, {**session.info, **pools}, plan, out, index, first)
            done += n
            if progress is not None:
                progress(done, inputs.num_samples)
    finally:
        session.close()


def _trace(
    backend: Backend, info: Mapping[str, str], plan: ProbePlan, out: Mapping[str, np.ndarray],
    index: QuantIndex, first: int,
) -> Trace:
    missing = [t for t in plan.tensors if t not in out]
    if missing:
        shown = ", ".join(repr(t) for t in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise BackendError(
            f"{backend.spec} returned no tensor {shown} (samples from {first}); it must return every "
            "graph output of the model it is given"
        )
    records = {t: TensorRecord(t, np.asarray(out[t]), index.quant_of(t)) for t in plan.tensors}
    return Trace(backend_label(backend), plan, records, dict(info), first)


def tee(traces: Iterable[Trace], sink: Callable[[Trace], None]) -> Generator[Trace, None, None]:
    """``traces`` unchanged, each one handed to ``sink`` first (e.g. to save it)."""
    for trace in traces:
        sink(trace)
        yield trace


class Capture:
    """Collects the arrays of chosen tensors from each batch's (reference, target) Traces;
    usable as the ``on_batch``/``on_traces`` callback of a comparison."""

    def __init__(self, ref_names: Iterable[str], tgt_names: Iterable[str] | None = None) -> None:
        self.ref_names = set(ref_names)
        self.tgt_names = set(self.ref_names if tgt_names is None else tgt_names)
        self._ref: dict[str, list[np.ndarray]] = {}
        self._tgt: dict[str, list[np.ndarray]] = {}

    def __call__(self, ref: Trace, tgt: Trace) -> None:
        for names, trace, store in ((self.ref_names, ref, self._ref), (self.tgt_names, tgt, self._tgt)):
            for n in names & trace.records.keys():
                store.setdefault(n, []).append(np.asarray(trace.records[n].data))

    @property
    def ref(self) -> dict[str, np.ndarray]:
        return _joined(self._ref)

    @property
    def target(self) -> dict[str, np.ndarray]:
        return _joined(self._tgt)


def _joined(store: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate(v, axis=0) for k, v in store.items()}


def gather(traces: Iterable[Trace], names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Consume ``traces`` and return the whole sample range of ``names`` (default: every tensor)."""
    parts: dict[str, list[np.ndarray]] = {}
    wanted = None if names is None else set(names)
    for trace in traces:
        for n, rec in trace.records.items():
            if wanted is None or n in wanted:
                parts.setdefault(n, []).append(np.asarray(rec.data))
    return _joined(parts)


def tensor_values(
    backend: Backend, model: ir.Model, tensors: Sequence[str], inputs: InputSet, batch_size: int = 64,
    *, index: QuantIndex | None = None,
) -> dict[str, np.ndarray]:
    """``backend``'s values of ``tensors`` in the whole ``model`` over every sample; graph inputs
    are taken from ``inputs`` without a run, and no run is made when nothing else is asked."""
    out = {t: inputs.arrays[t] for t in tensors if t in inputs.arrays}
    want = [t for t in tensors if t not in inputs.arrays]
    if not want:
        return out
    index = index or build_quant_index(model)
    plan = plan_probes(model, index, want)
    return out | gather(run_traces(backend, model, plan, inputs, batch_size, index=index), want)
