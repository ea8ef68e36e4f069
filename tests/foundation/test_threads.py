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
    s = threads.settings()
    assert s.cores == len(os.sched_getaffinity(0))
    assert s.blas == 1 and s.ort_intra_op == min(s.cores, threads.MAX_ORT_THREADS)
    monkeypatch.setenv("QPROBE_ORT_THREADS", "3")
    monkeypatch.setenv("QPROBE_BLAS_THREADS", "junk")
    s = threads.settings()
    assert s.ort_intra_op == 3 and s.blas == 1


def test_traces_record_the_settings_and_blas_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QPROBE_BLAS_THREADS", raising=False)
    monkeypatch.delenv("QPROBE_ORT_THREADS", raising=False)
    m = load_model(packaged_example_dir() / "tcn_int8.onnx")
    trace = next(iter(run_traces(create_backend("ort"), m, None, random_inputs(m, 4, 0), 4)))
    info = trace.session_info
    want = min(threads.cores(), threads.MAX_ORT_THREADS)
    assert info["threads.blas"] == "1" and info["threads.cores"] == str(threads.cores())
    assert info["intra_op_num_threads"] == str(want)
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)
    assert np.isfinite(np.asarray(trace.records["log_conc"].data)).all()


def test_the_threads_option_still_wins() -> None:
    m = load_model(packaged_example_dir() / "tcn_int8.onnx")
    trace = next(iter(run_traces(create_backend("ort-fused", {"threads": "1"}), m, None, random_inputs(m, 2, 0), 2)))
    assert trace.session_info["intra_op_num_threads"] == "1"
