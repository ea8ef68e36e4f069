"""Run one cut on a reference (and a target) with the reference's values at its inputs.

``run_cut`` is what ``qprobe extract --bundle`` needs: the cut model, the reference's
values of the cut inputs in the whole model, the reference's outputs of the cut and,
when a target is given, the target's outputs and the comparison rows.
``culprit_cut`` does the same from a finished ``Localization``, without new runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.compare import TensorComparison, TolerancePolicy, compare_backends
from qprobe.errors import InputError
from qprobe.localize.divergence import Divergence
from qprobe.localize.runner import Capture, IsolatedArrays
from qprobe.model.extract import extract_subgraph
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index


@dataclass(frozen=True)
class CutRun:
    model: ir.Model
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    observed: dict[str, np.ndarray] | None
    rows: tuple[TensorComparison, ...] = ()
    accumulated_inputs: tuple[TensorComparison, ...] = ()
    accumulated_outputs: tuple[TensorComparison, ...] = ()


def reference_values(model: ir.Model, ref: Backend, samples: InputSet, tensors: Sequence[str],
                     batch_size: int = 64) -> dict[str, np.ndarray]:
    """The reference's values of ``tensors`` in the whole model (graph inputs come from ``samples``)."""
    want = [t for t in tensors if t not in samples.arrays]
    out = {t: samples.arrays[t] for t in tensors if t in samples.arrays}
    if not want:
        return out
    probed = apply_probe_plan(model, plan_probes(model, build_quant_index(model), want))
    session = ref.open(probed)
    parts: dict[str, list[np.ndarray]] = {}
    try:
        for first, feeds in samples.batches(batch_size):
            res = session.run(feeds, first_sample=first)
            for t in want:
                parts.setdefault(t, []).append(np.asarray(res[t]))
    finally:
        session.close()
    return out | Capture.joined(parts)


def run_cut(
    model: ir.Model, inputs: Sequence[str], outputs: Sequence[str], ref: Backend, target: Backend | None,
    samples: InputSet, *, policy: TolerancePolicy | None = None, batch_size: int = 64,
) -> CutRun:
    cut = extract_subgraph(model, inputs, outputs)
    feeds = reference_values(model, ref, samples, inputs, batch_size)
    names = [str(v.name) for v in cut.graph.outputs]
    feed_set = InputSet(feeds, "the reference's values at the cut inputs")
    if target is None:
        session = ref.open(cut)
        try:
            res = session.run(feeds)
        finally:
            session.close()
        return CutRun(cut, feeds, {n: np.asarray(res[n]) for n in names}, None)
    cap = Capture(set(names), set(names))
    cmp = compare_backends(cut, ref, target, feed_set, probe="outputs", policy=policy, batch_size=batch_size,
                           check_probe_effect=False, on_traces=cap)
    return CutRun(cut, feeds, cap.joined(cap.ref), cap.joined(cap.tgt), cmp.rows)


def culprit_cut(model: ir.Model, div: Divergence, arrays: dict[str, IsolatedArrays], op: str | None = None) -> CutRun:
    """The one-op cut of ``op`` (default: the culprit) with the arrays of its isolated run."""
    finding = div.culprit if op is None else next((f for f in (div.culprit, *div.later) if f and f.op == op), None)
    if finding is None:
        raise InputError("no op introduces an error, so there is nothing to bundle" if op is None
                         else f"op {op!r} is not among the localized ops")
    if finding.op not in arrays:
        raise InputError(f"{finding.op} has no isolated run on the target (its role: {finding.role}); "
                         "a bundle needs one: rerun with a target that runs models")
    a = arrays[finding.op]
    cut = extract_subgraph(model, list(a.inputs), list(a.expected))
    acc_in = div.culprit_inputs if finding is div.culprit else ()
    return CutRun(cut, a.inputs, a.expected, a.observed, finding.isolated, acc_in, finding.accumulated)
