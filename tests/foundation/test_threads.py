"""Thread pools: numpy's BLAS limited, onnxruntime's intra-op threads set, both recorded in Traces."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from qprobe import threads
from qprobe.backends import create_backend
from qprobe.compare import run_traces
from qprobe.examples.tcn import packaged_example_dir
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model


def test_settings_follow_the_cores_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QPROBE_BLAS_THREADS", raising=False)
    monkeypatch.delenv("QPROBE_ORT_THREADS", raising=False)
    monkeypatch.delenv("QPROBE_ENGINE_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 16)
    monkeypatch.setattr(threads, "running_elsewhere", lambda: None)
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    s = threads.settings()
    assert s.cores == 16 and s.blas == 1 and s.ort_intra_op == threads.MAX_ORT_THREADS == s.engine
    monkeypatch.setattr(os, "getloadavg", lambda: (13.6, 0.0, 0.0))  # 14 of 16 cores busy elsewhere
    assert threads.settings().ort_intra_op == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 0.0, 0.0))
    assert threads.settings().ort_intra_op == 1
    monkeypatch.setenv("QPROBE_ORT_THREADS", "3")
    monkeypatch.setenv("QPROBE_ENGINE_THREADS", "2")
    monkeypatch.setenv("QPROBE_BLAS_THREADS", "junk")
    s = threads.settings()
    assert s.ort_intra_op == 3 and s.blas == 1 and s.engine == 2


def test_idle_cores_do_not_count_qprobes_own_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long run's own load is not other work; threads running now bound the averaged load."""
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 0.0, 0.0))
    monkeypatch.setattr(threads, "running_elsewhere", lambda: None)
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    assert threads.idle_cores() == 1  # someone else keeps a core busy
    monkeypatch.setattr(threads, "own_load", lambda: 1.8)
    assert threads.idle_cores() == 2  # that someone was this process
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 0)
    assert threads.idle_cores() == 2  # the work in the average has ended
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 5)
    assert threads.idle_cores() == 1


def test_own_load_follows_this_processs_cpu_time() -> None:
    x = 0
    for i in range(3_000_000):  # burn some CPU time in this process
        x += i
    assert threads.own_load() > 0.0
    assert threads.running_elsewhere() is None or threads.running_elsewhere() >= 0


def test_cores_are_the_affinity_set() -> None:
    assert threads.cores() == len(os.sched_getaffinity(0))


def test_traces_record_the_settings_and_blas_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QPROBE_BLAS_THREADS", raising=False)
    monkeypatch.delenv("QPROBE_ORT_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    m = load_model(packaged_example_dir() / "tcn_int8.onnx")
    trace = next(iter(run_traces(create_backend("ort"), m, None, random_inputs(m, 4, 0), 4)))
    info = trace.session_info
    want = min(threads.cores(), threads.MAX_ORT_THREADS)
    assert info.get("session.intra_op.allow_spinning") == ("0" if want > 1 else None)
    assert info["threads.blas"] == "1" and info["threads.cores"] == str(threads.cores())
    assert info["intra_op_num_threads"] == str(want)
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)
    assert np.isfinite(np.asarray(trace.records["log_conc"].data)).all()


def test_the_threads_option_still_wins() -> None:
    m = load_model(packaged_example_dir() / "tcn_int8.onnx")
    trace = next(iter(run_traces(create_backend("ort-fused", {"threads": "1"}), m, None, random_inputs(m, 2, 0), 2)))
    assert trace.session_info["intra_op_num_threads"] == "1"


def test_a_recent_reading_of_the_running_threads_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clock-free: the time and the readings are fed in."""
    clock = iter([100.0, 100.0, 100.1, 100.5, 100.5])  # call, store; reuse; call past FRESH_S, store
    readings = iter([3, 0])
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads, "_read_running", lambda samples: next(readings))
    monkeypatch.setattr(threads, "_reading", None)
    assert threads.running_elsewhere() == 3
    assert threads.running_elsewhere() == 3  # 0.1 s later: the same reading, no new one
    assert threads.running_elsewhere() == 0  # 0.5 s later: read again
