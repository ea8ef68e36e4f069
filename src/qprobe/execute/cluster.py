"""Connecting to a Dask cluster: ``local:N`` starts a ``LocalCluster``, ``tcp://HOST:PORT`` joins one.

This package is the only importer of dask (ruff TID251). ``distributed`` is imported when a
cluster is opened, never at ``import qprobe``, so a machine without the ``distributed`` extra
only learns about it when it asks for ``--cluster``.

``local:N`` starts N worker processes of one thread each; ``local:N,RES=K`` gives every local
worker K units of the Dask resource RES (``local:3,board=1``: three workers, one board each), as
``dask worker --resources RES=K`` does on real machines. Local workers split the cores between
their onnxruntime thread pools (``local_env``); results do not depend on the split (integer
kernels, and onnxruntime's CPU kernels partition work without changing any sum).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from qprobe.errors import InputError

INSTALL_HINT = "--cluster needs Dask, which is not installed: pip install 'qprobe[distributed]'"
FORMS = "local:N, local:N,RESOURCE=K (e.g. local:3,board=1) or tcp://HOST:PORT"
_LOCAL = re.compile(r"^local:(\d+)((?:,\w+=\d+(?:\.\d+)?)*)$")
CONNECT_TIMEOUT_S = 60


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster`` value: a local cluster of ``workers`` processes, or an ``address``."""

    text: str
    workers: int = 0
    resources: dict[str, float] = field(default_factory=dict)
    address: str | None = None


def parse_cluster(text: str) -> ClusterSpec:
    t = text.strip()
    if t.startswith(("tcp://", "tls://", "ucx://")):
        return ClusterSpec(t, address=t)
    m = _LOCAL.match(t)
    if m is None:
        raise InputError(f"--cluster {text!r} is not a cluster; use {FORMS}")
    n = int(m.group(1))
    if n < 1:
        raise InputError(f"--cluster {text!r}: a local cluster needs at least 1 worker (local:N, N >= 1)")
    res = {k: float(v) for k, v in (kv.split("=") for kv in m.group(2).split(",") if kv)}
    return ClusterSpec(t, workers=n, resources=res)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise InputError(INSTALL_HINT) from e
    return distributed


@dataclass
class Cluster:
    """A connected Dask client and what qprobe asks of the cluster's workers."""

    client: Any  # distributed.Client
    spec: ClusterSpec

    def workers(self) -> dict[str, dict[str, Any]]:
        return dict(self.client.scheduler_info()["workers"])

    def slots(self, resource: str | None) -> int:
        """How many tasks may run at once: workers' threads, or the units of ``resource`` they own."""
        ws = self.workers().values()
        if resource is None:
            return max(1, sum(int(w.get("nthreads", 1)) for w in ws))
        return int(sum(float(w.get("resources", {}).get(resource, 0)) for w in ws))

    def memory_limit(self) -> int | None:
        """The smallest worker memory limit in bytes (None: unlimited or unknown)."""
        limits = [int(w.get("memory_limit") or 0) for w in self.workers().values()]
        limits = [x for x in limits if x > 0]
        return min(limits) if limits else None

    def describe(self) -> dict[str, object]:
        return {"cluster": self.spec.text, "workers": len(self.workers())}


def local_env(workers: int) -> dict[str, str]:
    """Local workers share this machine's cores: each gets its share for onnxruntime's intra-op
    pool and the engine's batch split (``qprobe.threads``), so N workers do not run N pools as
    wide as the machine."""
    from qprobe.threads import cores

    share = str(max(1, cores() // workers))
    return {"QPROBE_ORT_THREADS": share, "QPROBE_ENGINE_THREADS": share}


@contextmanager
def connect(text: str) -> Iterator[Cluster]:
    """The cluster named by ``text`` (see the module docstring), closed (or left) on exit."""
    spec = parse_cluster(text)
    dist = _distributed()
    if spec.address is not None:
        try:
            client = dist.Client(spec.address, timeout=CONNECT_TIMEOUT_S)
        except OSError as e:
            raise InputError(f"--cluster {spec.address}: no Dask scheduler answers there ({e}); start one "
                             "with `dask scheduler` (docs/cluster.md)") from e
        with client:
            yield Cluster(client, spec)
        return
    # silence_logs: a task's failure reaches the user once, as qprobe's own error, not also as the
    # worker's "Compute Failed" log with a traceback
    local = dist.LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                              resources=spec.resources or None, dashboard_address=None, env=local_env(spec.workers),
                              silence_logs=logging.CRITICAL)
    try:
        client = dist.Client(local)
        try:
            yield Cluster(client, spec)
        finally:
            _closed_quietly(client)
    finally:
        _closed_quietly(local)


def _closed_quietly(thing: Any) -> None:
    """Close a local cluster or its client; one whose event loop has already been closed is
    already shut down. Seen on a machine with both cores busy: a worker process died at the end
    of a run and ``Client.close`` then raised ``RuntimeError: IOLoop is closed`` after every
    result was in. Any other error is raised."""
    try:
        thing.close()
    except RuntimeError as e:
        if "IOLoop is closed" not in str(e):
            raise
