"""Sharded compare: samples split into shards of whole batches, each shard compared on a worker.

The client ships a ``ShardJob`` (the model's bytes, both backends' specs and options, the input
*description* and the probe plan; never tensors) and each worker rebuilds the backends through
``qprobe.backends.registry``, re-resolves the inputs, runs both backends on its sample range and
returns one ``ComparisonAccumulator`` per batch. The client merges them in sample order: adding a
batch and merging that batch's fresh accumulator are the same arithmetic (``metrics.st``), so the
Comparison is bit-equal to the serial ``compare_backends`` with the same batch size.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnx_ir as ir

from qprobe import serde
from qprobe.backends import Backend, create_backend
from qprobe.backends.base import BackendBase, Capabilities, Session, describe_backend
from qprobe.compare import (
    Comparison,
    ComparisonAccumulator,
    InputRequest,
    TolerancePolicy,
    finish,
    resolve_inputs,
)
from qprobe.compare.budget import DEFAULT_MEMORY_BUDGET, choose_batch_size
from qprobe.compare.compare import Accumulated
from qprobe.compare.run import model_notes, restrict_plan, unprobed_reason
from qprobe.compare.traces import Progress, run_traces
from qprobe.errors import BackendError, InputError
from qprobe.execute.cluster import Cluster
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_bytes, model_from_proto
from qprobe.model.probe import plan_probes
from qprobe.model.quant import build_quant_index
from qprobe.tensors import ProbePlan, Trace

SHARDS_PER_WORKER = 2  # a little slack for uneven workers; more shards cost one task each


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to compare any range of samples (no tensors)."""

    model: bytes
    ref: tuple[str, dict[str, str]]
    target: tuple[str, dict[str, str]]
    request: InputRequest
    plan: ProbePlan
    plain: tuple[bool, bool]  # which side also gets an unprobed run
    outputs: tuple[str, ...]
    batch_size: int
    classifier: bool | None


@dataclass(frozen=True)
class ShardResult:
    accs: list[ComparisonAccumulator]  # one per batch, in sample order
    specs: dict[str, str]
    session_info: dict[str, dict[str, str]]


def shard_ranges(num_samples: int, batch_size: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous sample ranges of whole batches (the serial run's batches), in sample order."""
    batches = -(-num_samples // batch_size)
    per = -(-batches // max(1, min(shards, batches)))
    return [(b * batch_size, min(num_samples, (b + per) * batch_size)) for b in range(0, batches, per)]


def compare_on_cluster(
    cluster: Cluster, model: ir.Model, ref: Backend, target: Backend, request: InputRequest, *,
    inputs: InputSet | None = None, probe: str | Sequence[str] = "op-outputs", policy: TolerancePolicy | None = None,
    batch_size: int | None = None, memory_budget: int | None = None, classifier: bool | None = None,
    check_probe_effect: bool = True, progress: Progress | None = None, model_name: str = "",
) -> Comparison:
    """``compare_backends`` with the samples sharded over ``cluster``'s workers (same result for the
    same batch size).

    ``inputs``: the samples ``request`` resolves to, when the caller has them already (only their
    count and description are used here; the workers resolve ``request`` themselves).
    ``batch_size=None`` chooses the batch from ``memory_budget`` (bytes per worker; None: half the
    smallest worker memory limit, ``DEFAULT_MEMORY_BUDGET`` when the workers have none)."""
    index = build_quant_index(model)
    for b in (ref, target):
        b.bind(model)
    inputs = inputs or resolve_inputs(model, request, (ref, target))
    plan = restrict_plan(plan_probes(model, index, probe), ref, target)
    reasons = {role: unprobed_reason(b, plan, check_probe_effect) for role, b in (("ref", ref), ("target", target))}
    budget = memory_budget or worker_budget(cluster)
    batch = choose_batch_size(model, plan, budget) if batch_size is None else batch_size
    job = ShardJob(model_bytes(model), _described(ref), _described(target), request, plan,
                   (reasons["ref"] is None, reasons["target"] is None), tuple(graph_output_names(model)),
                   batch, classifier)
    ranges = shard_ranges(inputs.num_samples, batch, SHARDS_PER_WORKER * cluster.slots(None))
    done = _gather(cluster, job, ranges, progress, inputs.num_samples)
    prov = serde.provenance(backends={"ref": describe_backend(ref), "target": describe_backend(target)},
                            batch_size=batch, memory_budget=budget,
                            execution=cluster.describe() | {"shards": len(ranges)})
    cmp = finish(done, policy, model=model_name, inputs=inputs.source, index=index,
                 unchecked={r: why for r, why in reasons.items() if why}, provenance=prov)
    return replace(cmp, notes=tuple(model_notes(model, (ref, target))))


def worker_budget(cluster: Cluster) -> int:
    """Half the smallest worker memory limit: the other half is the worker's own (Dask, transfers)."""
    limit = cluster.memory_limit()
    return limit // 2 if limit else DEFAULT_MEMORY_BUDGET


def _described(b: Backend) -> tuple[str, dict[str, str]]:
    d = describe_backend(b)
    return str(d["spec"]), dict(d["options"])  # type: ignore[call-overload]


def _gather(cluster: Cluster, job: ShardJob, ranges: list[tuple[int, int]], progress: Progress | None,
            total: int) -> Accumulated:
    """Submit one task per shard and fold the per-batch accumulators in sample order."""
    client = cluster.client
    [job_f] = client.scatter([job], broadcast=True)
    futures = [client.submit(compare_shard, job_f, lo, hi, pure=False) for lo, hi in ranges]
    acc = ComparisonAccumulator(job.plan.tensors, job.outputs, job.classifier)
    first: ShardResult | None = None
    try:
        for (_lo, hi), fut in zip(ranges, futures, strict=True):
            res: ShardResult = fut.result()
            first = first or res
            for a in res.accs:
                acc.merge(a)
            if progress is not None:
                progress(hi, total)
    finally:
        client.cancel(futures)
    if first is None or acc.samples == 0:
        raise BackendError("no samples were compared: the input set is empty")
    return Accumulated(acc, job.plan, first.specs, first.session_info)


def compare_shard(job: ShardJob, lo: int, hi: int) -> ShardResult:
    """On a worker: compare samples ``[lo, hi)``; one accumulator per batch of ``job.batch_size``
    (the exact code-pair counts all in the first one)."""
    model = model_from_proto(onnx.load_model_from_string(job.model))
    ref, target = (create_backend(spec, opts) for spec, opts in (job.ref, job.target))
    for b in (ref, target):
        b.bind(model)
    whole = resolve_inputs(model, job.request, (ref, target))
    if whole.num_samples < hi:
        raise InputError(f"a worker resolved {whole.num_samples} samples, the client {hi} or more: do all "
                         "workers see the same input files?")
    shard = whole.window(lo, hi)
    index = build_quant_index(model)
    sides = [Offset(ref, lo), Offset(target, lo)]

    def stream(b: Backend, p: ProbePlan | None) -> Generator[Trace, None, None]:
        return run_traces(b, model, p, shard, job.batch_size, index=index)

    accs: list[ComparisonAccumulator] = []
    with ExitStack() as stack:
        probed = [stack.enter_context(closing(stream(b, job.plan))) for b in sides]
        plain = [stack.enter_context(closing(stream(b, None))) if want else None
                 for b, want in zip(sides, job.plain, strict=True)]
        info: dict[str, dict[str, str]] = {}
        specs = {"ref": ref.spec, "target": target.spec}
        for r, t in zip(*probed, strict=True):
            rp, tp = (next(s) if s is not None else None for s in plain)
            acc = ComparisonAccumulator(job.plan.tensors, job.outputs, job.classifier)
            acc.add(r, t, rp, tp)
            if accs:
                acc.move_code_pairs(accs[0])
            accs.append(acc)
            info = info or {"ref": dict(r.session_info), "target": dict(t.session_info)}
            specs = {"ref": r.backend, "target": t.backend}
    return ShardResult(accs, specs, info)


class Offset(BackendBase):
    """A backend whose sessions see sample indices shifted by ``offset`` (a shard's first sample),
    so recorded backends find their samples; labelled exactly as the backend it wraps."""

    def __init__(self, backend: Backend, offset: int) -> None:
        self.backend, self.offset = backend, offset
        self.spec, self.spec_options = backend.spec, backend.spec_options

    def capabilities(self) -> Capabilities:
        return self.backend.capabilities()

    def open(self, model: ir.Model) -> Session:
        return _OffsetSession(self.backend.open(model), self.offset)


class _OffsetSession:
    def __init__(self, session: Session, offset: int) -> None:
        self.session, self.offset = session, offset
        self.info = session.info

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        return self.session.run(feeds, first_sample=first_sample + self.offset)

    def close(self) -> None:
        self.session.close()
