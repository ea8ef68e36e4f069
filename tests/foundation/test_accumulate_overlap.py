"""``accumulate`` computes one batch's metrics on a worker thread while the streams make the next:
the batches are added one at a time, in order, and an error raised by a batch's metrics reaches
the caller as the typed error it is.

Oracles: numpy over the concatenated batches (exact integer LSB counts, float64 RMSE) and a
record of when each ``add`` ran."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from qprobe.compare.accumulate import ComparisonAccumulator
from qprobe.compare.compare import Streams, accumulate, finish
from qprobe.errors import BackendError
from qprobe.tensors import ProbePlan, QuantParams, TensorRecord, Trace

Q = QuantParams.from_arrays(0.05, 3, "int8")
PLAN = ProbePlan("explicit", ("a", "y"), ("a",))


def _batches(seed: int, n: int = 6, size: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"a": rng.integers(-128, 128, (size, 40), dtype=np.int8),
             "y": rng.normal(size=(size, 3)).astype(np.float32)} for _ in range(n)]


def _stream(label: str, batches: list[dict[str, np.ndarray]], made: list[tuple[str, int, float]]) -> Iterator[Trace]:
    first = 0
    for b in batches:
        made.append((label, first, time.perf_counter()))
        yield Trace(label, PLAN, {"a": TensorRecord("a", b["a"], Q), "y": TensorRecord("y", b["y"])}, {}, first)
        first += len(b["a"])


def test_batches_are_added_in_order_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _batches(1)
    tgt = [{"a": np.clip(b["a"].astype(np.int16) + (np.arange(b["a"].size).reshape(b["a"].shape) % 3 - 1),
                         -128, 127).astype(np.int8), "y": b["y"] + np.float32(0.01)} for b in ref]
    adds: list[tuple[int, float, float, str]] = []
    real = ComparisonAccumulator.add

    def add(self: ComparisonAccumulator, r: Trace, t: Trace, *rest: object) -> None:
        t0 = time.perf_counter()
        real(self, r, t, *rest)  # type: ignore[arg-type]
        adds.append((r.first_sample, t0, time.perf_counter(), threading.current_thread().name))

    monkeypatch.setattr(ComparisonAccumulator, "add", add)
    made: list[tuple[str, int, float]] = []
    seen: list[int] = []
    done = accumulate(Streams(_stream("ref", ref, made), _stream("tgt", tgt, made)), ["y"],
                      on_batch=lambda r, t: seen.append(r.first_sample))
    firsts = [a[0] for a in adds]
    assert firsts == sorted(firsts) == seen == list(range(0, 30, 5))
    assert all(a[2] <= b[1] for a, b in zip(adds, adds[1:], strict=False))  # never two at once
    assert {a[3] for a in adds} != {threading.main_thread().name}  # on the worker
    rows = {r.name: r for r in finish(done).rows}
    want_a = np.concatenate([b["a"] for b in tgt]).astype(np.int64) - np.concatenate([b["a"] for b in ref])
    lsb = rows["a"].lsb
    assert lsb is not None and lsb.n == want_a.size
    assert lsb.exact_share == pytest.approx(np.count_nonzero(want_a == 0) / want_a.size, abs=0)
    assert lsb.max_abs_lsb == int(np.abs(want_a).max())
    assert lsb.mean_delta_lsb == pytest.approx(-float(want_a.mean()), rel=1e-12)
    dy = np.concatenate([b["y"] for b in tgt]).astype(np.float64) - np.concatenate([b["y"] for b in ref])
    assert rows["y"].st.rmse == pytest.approx(float(np.sqrt(np.mean(dy * dy))), rel=1e-5)


def test_an_error_in_a_batch_s_metrics_reaches_the_caller() -> None:
    ref = _batches(2)
    tgt = [dict(b) for b in ref]
    tgt[3] = {"a": ref[3]["a"][:, :39], "y": ref[3]["y"]}  # the target returned a different shape
    made: list[tuple[str, int, float]] = []
    with pytest.raises(BackendError, match="tensor 'a'.*different shape"):
        accumulate(Streams(_stream("ref", ref, made), _stream("tgt", tgt, made)), ["y"])
    assert max(first for _, first, _ in made) <= 25  # stopped, not hung
