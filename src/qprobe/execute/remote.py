"""Target runs on cluster workers: a board farm behind one ``Backend``.

``RemoteBackend`` wraps a backend so that every ``Session.run`` is one Dask task on a worker: the
task gets the backend's spec and options (rebuilt there through ``qprobe.backends.registry``), the
model's bytes and the batch's feeds, and returns the outputs. A backend that declares a resource
(``command:`` with ``--target-opt resource=board``) is submitted with ``resources={RES: 1}``, so a
worker started with ``--resources board=1`` runs one model at a time on its board, while work that
declares none (engine, onnxruntime) goes to any worker. The wrapper's ``concurrency`` is the number
of such slots in the cluster, so localize (waves of independent runs) and ``cluster_run_many`` keep
every board busy. A command target's cache directory must be a path all workers see: a resumed run
then finds every finished run there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

import numpy as np
import onnx
import onnx_ir as ir

from qprobe.backends import Backend, create_backend
from qprobe.backends.base import BackendBase, Capabilities, describe_backend
from qprobe.errors import InputError
from qprobe.execute.cluster import Cluster
from qprobe.model.loader import model_bytes, model_from_proto

T = TypeVar("T")


class RemoteBackend(BackendBase):
    """``backend`` with its sessions run on ``cluster``'s workers (see the module docstring)."""

    def __init__(self, cluster: Cluster, backend: Backend, nodes: tuple[str, ...] | None = None) -> None:
        self.cluster, self.backend, self.nodes = cluster, backend, nodes
        self.spec, self.spec_options = backend.spec, backend.spec_options
        caps = backend.capabilities()
        self.slots = cluster.slots(caps.resource)
        if self.slots < 1:
            raise InputError(f"the target needs the Dask resource {caps.resource!r} but no worker of --cluster "
                             f"{cluster.spec.text} offers it; start one worker per board with "
                             f"`dask worker SCHEDULER --resources {caps.resource}=1` (docs/cluster.md)")
        self._caps = replace(caps, concurrency=max(caps.concurrency, self.slots))

    def capabilities(self) -> Capabilities:
        return self._caps

    def open(self, model: ir.Model) -> RemoteSession:
        return RemoteSession(self, model_bytes(model))

    def scoped(self, nodes: Collection[str]) -> Backend:
        inner = self.backend.scoped(nodes)
        return self if inner is self.backend else RemoteBackend(self.cluster, inner, tuple(nodes))

    def bind(self, model: ir.Model) -> None:
        self.backend.bind(model)

    def recorded_inputs(self, model: ir.Model) -> dict[str, np.ndarray] | None:
        return self.backend.recorded_inputs(model)

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None:
        return self.backend.fusion_groups(model)


class RemoteSession:
    """One model opened for remote runs: each ``run`` is a task; ``info`` is the worker session's."""

    def __init__(self, owner: RemoteBackend, model: bytes) -> None:
        self.owner = owner
        self.model: bytes | None = model  # sent with each task: scattered data dies with its worker
        self.info: dict[str, str] = {}

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        o = self.owner
        d = describe_backend(o.backend)
        resource = o.capabilities().resource
        fut = o.cluster.client.submit(
            run_remote, str(d["spec"]), dict(o.backend.spec_options or {}), o.nodes, self.model, dict(feeds),
            first_sample,
            resources={resource: 1} if resource else None, pure=False,
        )
        out, info = fut.result()
        self.info = self.info or dict(info)
        return out

    def close(self) -> None:
        self.model = None


def run_remote(spec: str, options: dict[str, str], nodes: tuple[str, ...] | None, model: bytes,
               feeds: dict[str, np.ndarray], first_sample: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """On a worker: open ``model`` on the backend ``spec`` (scoped to ``nodes``), run ``feeds``, close."""
    backend = create_backend(spec, options)
    if nodes is not None:
        backend = backend.scoped(nodes)
    session = backend.open(model_from_proto(onnx.load_model_from_string(model)))
    try:
        return session.run(feeds, first_sample=first_sample), dict(session.info)
    finally:
        session.close()


def cluster_run_many(cluster: Cluster, resource: str | None = None) -> Callable[[Sequence[Callable[[], T]]], list[T]]:
    """A ``run_many`` for localize: the thunks run in client threads, as many at once as the cluster
    has slots for ``resource``; the target runs inside them are tasks on the workers (RemoteBackend)."""
    width = max(1, cluster.slots(resource))

    def run_many(thunks: Sequence[Callable[[], T]]) -> list[T]:
        with ThreadPoolExecutor(max_workers=max(1, min(width, len(thunks)))) as pool:
            return list(pool.map(lambda f: f(), thunks))

    return run_many


def on_cluster(cluster: Cluster | None, backend: Backend) -> Backend:
    """``backend`` with its runs on ``cluster`` (unchanged without a cluster, or for recorded data)."""
    if cluster is None or not backend.capabilities().accepts_models:
        return backend
    return RemoteBackend(cluster, backend)
