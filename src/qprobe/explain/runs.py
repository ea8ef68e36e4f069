"""Running models for explain, in bounded memory, through ``compare.run_traces``.

``run_model`` runs one model (a cut or a probe model: the backend is ``scoped`` to its
nodes) over every sample and keeps the rows of chosen samples only.
``capture`` runs a probed model keeping every sample of a few tensors (the culprit's
boundary) and the rows of evenly spread samples of every tensor, at most
``TRACE_ELEMENTS`` elements. ``ReplayBackend`` serves such rows back as
a backend, so that profiles can be compared with the target's trace without running the
target again.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend, BackendBase, Capabilities
from qprobe.compare import run_traces
from qprobe.model.inputs import InputSet
from qprobe.tensors import ProbePlan

TRACE_ELEMENTS = 4_000_000
OBS_ELEMENTS = 1_000_000


def spread(total: int, per_sample: float, limit: int) -> np.ndarray:
    """At most ``limit // per_sample`` (at least one) evenly spread sample indices of ``total``."""
    n = max(1, min(total, int(limit // max(per_sample, 1.0))))
    return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))


def _rows(keep: np.ndarray, first: int, n: int) -> np.ndarray:
    sel = keep[(keep >= first) & (keep < first + n)]
    return sel - first


def _scoped(backend: Backend, model: ir.Model) -> Backend:
    """The backend to open ``model`` (a cut or a probe model, not the user's) with."""
    return backend.scoped([str(n.name) for n in model.graph])


def run_model(
    backend: Backend, model: ir.Model, inputs: InputSet, keep: np.ndarray | None = None, batch_size: int = 64,
    *, scoped: bool = True,
) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` on ``backend``, rows ``keep`` (None: all samples)."""
    parts: dict[str, list[np.ndarray]] = {}
    with closing(run_traces(_scoped(backend, model) if scoped else backend, model, None, inputs, batch_size)) as tr:
        for trace in tr:
            sel = None if keep is None else _rows(keep, trace.first_sample, trace.num_samples)
            for k, rec in trace.records.items():
                arr = np.asarray(rec.data)
                parts.setdefault(k, []).append(arr if sel is None else arr[sel])
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


@dataclass
class Captured:
    """One backend's run of a probed model: every sample of a few tensors, kept rows of all."""

    full: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    keep: np.ndarray


def capture(backend: Backend, model: ir.Model, plan: ProbePlan, inputs: InputSet, full: set[str],
            keep: np.ndarray | None = None, batch_size: int = 64, limit: int = TRACE_ELEMENTS) -> Captured:
    """Run ``model`` probed by ``plan``, keeping all samples of ``full`` and the rows ``keep`` of every
    tensor (chosen from the first batch when None: evenly spread, at most ``limit`` elements)."""
    parts: dict[str, list[np.ndarray]] = {}
    kept: dict[str, list[np.ndarray]] = {}
    with closing(run_traces(backend, model, plan, inputs, batch_size)) as traces:
        for trace in traces:
            out = {k: np.asarray(r.data) for k, r in trace.records.items()}
            n = trace.num_samples
            if keep is None:
                keep = spread(inputs.num_samples, sum(v.size for v in out.values()) / max(n, 1), limit)
            sel = _rows(keep, trace.first_sample, n)
            for k, v in out.items():
                kept.setdefault(k, []).append(v[sel])
                if k in full:
                    parts.setdefault(k, []).append(v)
    assert keep is not None
    return Captured({k: np.concatenate(v) for k, v in parts.items()}, {k: np.concatenate(v) for k, v in kept.items()},
                    keep)


def kept_inputs(inputs: InputSet, keep: np.ndarray) -> InputSet:
    if keep.size == inputs.num_samples:
        return inputs
    return InputSet({k: v[keep] for k, v in inputs.arrays.items()},
                    f"{inputs.source} ({keep.size} of {inputs.num_samples} samples, evenly spread)")


class ReplayBackend(BackendBase):
    """Recorded rows served back per batch (a target trace, compared without rerunning it)."""

    def __init__(self, spec: str, arrays: Mapping[str, np.ndarray]) -> None:
        self.spec = spec
        self.arrays = dict(arrays)

    def capabilities(self) -> Capabilities:
        return Capabilities(accepts_models=False, available_tensors=frozenset(self.arrays))

    def open(self, model: ir.Model) -> _ReplaySession:
        return _ReplaySession(self.arrays, self.spec)


class _ReplaySession:
    def __init__(self, arrays: dict[str, np.ndarray], spec: str) -> None:
        self.arrays = arrays
        self.info = {"replay": f"rows recorded from {spec}"}

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0] if feeds else 1
        return {k: v[first_sample : first_sample + n] for k, v in self.arrays.items()}

    def close(self) -> None:
        self.arrays = {}
