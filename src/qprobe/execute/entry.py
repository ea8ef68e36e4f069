"""What the CLI calls with ``--cluster``: one function per use, each opening and closing the cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import onnx_ir as ir

from qprobe.backends import Backend
from qprobe.compare import Comparison, InputRequest
from qprobe.execute.cluster import connect
from qprobe.execute.remote import RemoteBackend, cluster_run_many, on_cluster
from qprobe.execute.shard import compare_on_cluster
from qprobe.localize import Localization, localize
from qprobe.model.inputs import InputSet


def compare_sharded(cluster: str, model: ir.Model, ref: Backend, target: Backend, request: InputRequest,
                    inputs: InputSet, **options: Any) -> Comparison:
    """``compare_backends`` sharded over the cluster named ``cluster`` (``compare_on_cluster``)."""
    request = _absolute(request)
    with connect(cluster) as c:
        return compare_on_cluster(c, model, ref, target, request, inputs=inputs, **options)


@contextmanager
def target_on(cluster: str | None, target: Backend) -> Iterator[Backend]:
    """``target`` with its runs as tasks on the cluster (``RemoteBackend``); itself without one."""
    if cluster is None:
        yield target
        return
    with connect(cluster) as c:
        yield on_cluster(c, target)


def localize_on(cluster: str | None, model: ir.Model, ref: Backend, target: Backend, inputs: InputSet | None,
                **options: Any) -> Localization:
    """``localize`` with the target's runs on the cluster, independent runs at once on free boards."""
    with target_on(cluster, target) as tgt:
        run_many = None
        if isinstance(tgt, RemoteBackend):
            run_many = cluster_run_many(tgt.cluster, tgt.capabilities().resource)
        return localize(model, ref, tgt, inputs, run_many=run_many, **options)


def _absolute(request: InputRequest) -> InputRequest:
    """Paths as every worker must see them (a shared filesystem), not relative to the client."""
    fix = {k: getattr(request, k).resolve() for k in ("path", "example") if getattr(request, k) is not None}
    return replace(request, **fix)
