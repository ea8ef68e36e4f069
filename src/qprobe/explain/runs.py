"""Running models for explain, in bounded memory: the one place here that opens a backend.

``run_model`` runs one model on a backend over every sample (in batches, or all at once
for a costly whole-run target) and keeps the rows of chosen samples only.
``capture`` runs a probed model keeping every sample of a few tensors (the culprit's
boundary) and the rows of evenly spread samples of every tensor, at most
``TRACE_ELEMENTS`` elements. ``ReplayBackend`` serves such rows back as
a backend, so that profiles can be compared with the target's trace without running the
target again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend, BackendBase, Capabilities
from qprobe.model.inputs import InputSet

TRACE_ELEMENTS = 4_000_000
OBS_ELEMENTS = 1_000_000


def spread(total: int, per_sample: float, limit: int) -> np.ndarray:
    """At most ``limit // per_sample`` (at least one) evenly spread sample indices of ``total``."""
    n = max(1, min(total, int(limit // max(per_sample, 1.0))))
    return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))


def _rows(keep: np.ndarray, first: int, n: int) -> np.ndarray:
    sel = keep[(keep >= first) & (keep < first + n)]
    return sel - first


def run_model(
    backend: Backend, model: ir.Model, inputs: InputSet, keep: np.ndarray | None = None, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` on ``backend``, rows ``keep`` (None: all samples)."""
    session = backend.open(model)
    parts: dict[str, list[np.ndarray]] = {}
    try:
        whole = backend.capabilities().whole_run
        for first, feeds in ([(0, inputs.arrays)] if whole else inputs.batches(batch_size)):
            out = session.run(feeds, first_sample=first)
            n = next(iter(feeds.values())).shape[0]
            sel = None if keep is None else _rows(keep, first, n)
            for k, v in out.items():
                arr = np.asarray(v)
                parts.setdefault(k, []).append(arr if sel is None else arr[sel])
    finally:
        session.close()
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


@dataclass
class Captured:
    """One backend's run of a probed model: every sample of a few tensors, kept rows of all."""

    full: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    keep: np.ndarray


def capture(backend: Backend, model: ir.Model, inputs: InputSet, full: set[str], keep: np.ndarray | None = None,
            batch_size: int = 64, limit: int = TRACE_ELEMENTS) -> Captured:
    """Run ``model`` keeping all samples of ``full`` and the rows ``keep`` of every output (chosen
    from the first batch when None: evenly spread, at most ``limit`` elements in all)."""
    session = backend.open(model)
    parts: dict[str, list[np.ndarray]] = {}
    kept: dict[str, list[np.ndarray]] = {}
    try:
        whole = backend.capabilities().whole_run
        for first, feeds in ([(0, inputs.arrays)] if whole else inputs.batches(batch_size)):
            out = {k: np.asarray(v) for k, v in session.run(feeds, first_sample=first).items()}
            n = next(iter(feeds.values())).shape[0]
            if keep is None:
                keep = spread(inputs.num_samples, sum(v.size for v in out.values()) / max(n, 1), limit)
            sel = _rows(keep, first, n)
            for k, v in out.items():
                kept.setdefault(k, []).append(v[sel])
                if k in full:
                    parts.setdefault(k, []).append(v)
    finally:
        session.close()
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
