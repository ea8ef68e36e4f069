"""``compare_traces``: a pure comparison of two streams of Traces under a tolerance policy.

``accumulate`` consumes the streams batch by batch into a ``ComparisonAccumulator``
(mergeable, so shards can be accumulated apart and combined); ``finish`` judges every
tensor with the policy and builds the ``Comparison``. ``compare_traces`` is the two in a
row. No backend is opened here: ``run_traces`` makes the streams, or saved trace folders
replay them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from qprobe import serde
from qprobe.compare.accumulate import ComparisonAccumulator, TensorAccumulator
from qprobe.compare.policy import EXACT, TolerancePolicy
from qprobe.compare.result import Comparison, OutputEffect, ProbeEffect, TensorComparison
from qprobe.errors import BackendError
from qprobe.model.quant import QuantIndex
from qprobe.tensors import ProbePlan, Trace, TraceFolder

OnBatch = Callable[[Trace, Trace], None]


@dataclass
class Streams:
    """What one comparison consumes: the probed streams and, optionally, each side's unprobed one."""

    ref: Iterable[Trace]
    target: Iterable[Trace]
    ref_plain: Iterable[Trace] | None = None
    target_plain: Iterable[Trace] | None = None


@dataclass
class Accumulated:
    """A finished accumulation and the facts about the streams a Comparison reports."""

    acc: ComparisonAccumulator
    plan: ProbePlan
    specs: dict[str, str]
    session_info: dict[str, dict[str, str]] = field(default_factory=dict)


def accumulate(
    streams: Streams, outputs: Sequence[str], *, classifier: bool | None = None, on_batch: OnBatch | None = None,
) -> Accumulated:
    """Consume every batch of ``streams`` (the probed streams' plans must agree).

    One batch's metrics are computed on a worker thread while the streams run the next batch
    (a backend's run and numpy's loops both release the GIL): the batches are still added one
    at a time and in order, so the result is the same, and at most two batches are held
    (``budget.STREAMS`` counts them). On the 2-core machine this took the TCN's 10^3-sample
    comparison from 1.26-1.54 s to 1.12-1.30 s (benchmarks/bench_compare.py)."""
    acc: ComparisonAccumulator | None = None
    facts: Accumulated | None = None
    plains = [streams.ref_plain or (), streams.target_plain or ()]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qprobe-metrics") as metrics:
        pending: Future[None] | None = None
        for ref, tgt, ref_plain, tgt_plain in zip_longest(streams.ref, streams.target, *plains):
            if ref is None or tgt is None:
                raise BackendError("the reference and the target returned different numbers of batches")
            if acc is None or facts is None:
                acc = ComparisonAccumulator(ref.plan.tensors, outputs, classifier)
                facts = Accumulated(acc, ref.plan, {"ref": ref.backend, "target": tgt.backend},
                                    {"ref": dict(ref.session_info), "target": dict(tgt.session_info)})
            if pending is not None:
                pending.result()
            pending = metrics.submit(acc.add, ref, tgt, ref_plain, tgt_plain)
            if on_batch is not None:
                on_batch(ref, tgt)
        if pending is not None:
            pending.result()
    if facts is None:
        raise BackendError("no samples were compared: the input set is empty")
    return facts


def finish(
    done: Accumulated,
    policy: TolerancePolicy | None = None,
    *,
    model: str = "",
    inputs: str = "",
    index: QuantIndex | None = None,
    unchecked: Mapping[str, str] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Comparison:
    """Judge every tensor and build the Comparison (``unchecked``: role -> why no unprobed run)."""
    policy = policy or TolerancePolicy()
    acc = done.acc
    rows = _rows([n for n in acc.names if n in acc.tensors], acc.tensors, index, policy)
    deployed = tuple(_row(n, acc.deployed[n], index, policy, False) for n in acc.outputs if n in acc.deployed)
    effects = []
    for role in ("ref", "target"):
        if role in acc.effects:
            effects.append(_effect(done.specs[role], acc.effects[role]))
        else:
            reason = (unchecked or {}).get(role, "not checked")
            effects.append(ProbeEffect(done.specs[role], False, (), reason))
    return Comparison(
        model=model, ref=done.specs["ref"], target=done.specs["target"], num_samples=acc.samples,
        inputs=inputs, plan=done.plan, rows=rows, probe_effects=tuple(effects),
        session_info=done.session_info, deployed=deployed, policy=policy.to_json(),
        provenance=dict(provenance or {}),
    )


def compare_traces(
    ref_traces: Iterable[Trace],
    target_traces: Iterable[Trace],
    policy: TolerancePolicy | None = None,
    *,
    outputs: Sequence[str] = (),
    ref_plain: Iterable[Trace] | None = None,
    target_plain: Iterable[Trace] | None = None,
    classifier: bool | None = None,
    index: QuantIndex | None = None,
    model: str = "",
    inputs: str = "",
    on_batch: OnBatch | None = None,
) -> Comparison:
    """Compare two streams of Traces tensor by tensor (``outputs``: the model's final outputs,
    judged on the unprobed streams when they are given; ``on_batch`` sees each probed pair)."""
    streams = Streams(ref_traces, target_traces, ref_plain, target_plain)
    done = accumulate(streams, outputs, classifier=classifier, on_batch=on_batch)
    return finish(done, policy, model=model, inputs=inputs, index=index)


def _effect(spec: str, outputs: Mapping[str, TensorAccumulator]) -> ProbeEffect:
    effects = []
    for name, acc in outputs.items():
        st, lsb = acc.result()
        identical = st.n > 0 and st.rmse == 0.0
        effects.append(OutputEffect(name, identical, st.cos, None if lsb is None else lsb.max_abs_lsb,
                                    None if lsb is None else lsb.exact_share))
    changed = tuple(sorted(e.name for e in effects if not e.identical))
    detail = "probing changed the final outputs" if changed else "final outputs identical with and without probes"
    return ProbeEffect(spec, True, changed, detail, tuple(effects))


def _rows(names: Sequence[str], accs: Mapping[str, TensorAccumulator], index: QuantIndex | None,
          policy: TolerancePolicy) -> tuple[TensorComparison, ...]:
    """Rows in topological order; a row whose op's inputs are all identical is judged as local error."""
    identical: set[str] = set()
    rows = []
    for n in names:
        row = _row(n, accs[n], index, policy, index is not None and _fed_identically(index, n, identical))
        if row.verdict == EXACT:
            identical.add(n)
            if index is not None:
                identical.update(d for d, c in index.dequantized.items() if c == n)
        rows.append(row)
    return tuple(rows)


def _fed_identically(index: QuantIndex, tensor: str, identical: set[str]) -> bool:
    """Every input of ``tensor``'s op is exact so far, or a graph input (fed the same samples)."""
    ins = index.inputs_of(tensor)
    return ins is not None and all(t in identical or t not in index.producer for t in ins if t)


def _row(name: str, acc: TensorAccumulator, index: QuantIndex | None, policy: TolerancePolicy,
         inputs_identical: bool) -> TensorComparison:
    st, lsb = acc.result()
    verdict, reason = policy.judge(name, st, lsb, inputs_identical)
    producer, op_type = ("", "") if index is None else index.label(name)
    return TensorComparison(name, producer, op_type, acc.quant, st, lsb, verdict, reason)


def compare_saved(
    ref: TraceFolder,
    target: TraceFolder,
    policy: TolerancePolicy | None = None,
    *,
    roles: tuple[str, str] = ("ref", "target"),
    index: QuantIndex | None = None,
    model: str = "",
) -> Comparison:
    """Compare Traces saved by ``compare --save-traces``: the ``roles[0]`` streams of ``ref``
    against the ``roles[1]`` streams of ``target`` (their unprobed streams too, when saved)."""
    first = next(ref.read(roles[0]))
    outputs = [t for t in first.plan.tensors if t not in first.plan.added_outputs]
    plain = [f.read(f"{r}.plain") if f.files(f"{r}.plain") else None for f, r in ((ref, roles[0]), (target, roles[1]))]
    streams = Streams(ref.read(roles[0]), target.read(roles[1]), plain[0], plain[1])
    done = accumulate(streams, outputs)
    unchecked = {r: "not saved: the traces hold no unprobed run" for r, p in zip(("ref", "target"), plain, strict=True)
                 if p is None}
    return finish(done, policy, model=model, inputs=f"saved traces {ref.folder}, {target.folder}", index=index,
                  unchecked=unchecked, provenance=serde.provenance(saved={"ref": str(ref.folder),
                                                                            "target": str(target.folder)}))
