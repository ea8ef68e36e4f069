"""The engine's batch split over threads (backends/engine/batch_split.py).

Oracle: the same program run on the whole batch (samples are independent, so the split
run must give the same codes bit for bit), and onnxruntime for the models of the corpus
(``test_corpus_engine`` checks the whole-batch run against it). The static rules are
checked on graphs that mix samples, and the runtime check on a runner that does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from qprobe.backends.engine import EngineBackend, get_profile
from qprobe.backends.engine import batch_split as bs
from qprobe.examples.tcn import packaged_example_dir

from models.corpus import CORPUS, Built


def _session(model: ir.Model, monkeypatch: pytest.MonkeyPatch, threads: int = 2):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QPROBE_ENGINE_THREADS", str(threads))
    return EngineBackend(get_profile("onnxruntime")).open(model)


def _samples(built: Built, n: int) -> dict[str, np.ndarray]:
    data = built.samples()
    return {k: np.resize(v, (n, *v.shape[1:])) for k, v in data.items()}


@pytest.mark.parametrize("name", list(CORPUS))
def test_split_equals_whole_on_every_corpus_model(name: str, corpus: dict[str, Built],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    built = corpus[name]
    session = _session(ir.load(built.int8), monkeypatch)
    blocker = session.program.split_blocker
    if name == "fixed_batch_one":
        assert blocker is not None and "fixed at 1" in blocker and session._runner.disabled == blocker
        assert session.info["batch_split"] == f"off: {blocker}"
        return
    assert blocker is None, blocker
    feeds = _samples(built, 4 * bs.MIN_CHUNK)
    whole = session.program.run(feeds)
    split = session._runner._split(feeds, 4 * bs.MIN_CHUNK, 2)
    assert split is not None and split.keys() == whole.keys()
    for k, w in whole.items():
        assert split[k].dtype == w.dtype and np.array_equal(split[k], w, equal_nan=True), k
    if session._runner._blas is not None:  # the wide-BLAS way too, on every export pattern
        wide = session._runner._by(bs.WIDE, feeds, 4 * bs.MIN_CHUNK, 2)
        assert wide is not None
        for k, w in whole.items():
            assert wide[k].dtype == w.dtype and np.array_equal(wide[k], w, equal_nan=True), k


def test_the_runner_times_both_ways_and_keeps_the_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clock-free: the timings are fed in."""
    calls: list[int] = []

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(len(feeds["x"]))
        return {"y": feeds["x"] * 2}

    # the first call (the checked split and its whole run) is not timed; then whole, split in turn
    fake = iter([1.0, 0.4, 1.0, 0.5, 0.9, 0.6] + [0.0] * 50)
    monkeypatch.setattr(bs, "_timed", lambda fn, feeds: (fn(feeds), next(fake)))
    runner = bs.SplitRunner(run, ["x"], 2)
    x = np.arange(64, dtype=np.int32).reshape(32, 2)
    for _ in range(2 * bs.TRIALS + 1):
        assert np.array_equal(runner(x_feed := {"x": x})["y"], x * 2)
    assert runner.decided == {32: bs.SPLIT} and runner.disabled is None
    calls.clear()
    assert np.array_equal(runner(x_feed)["y"], x * 2)
    assert calls == [16, 16]  # split from now on
    calls.clear()
    runner({"x": x[:24]})  # a smaller size, above 2 chunks: implied by nothing measured larger -> trials again
    assert calls and calls[0] == 24
    runner.close()


def test_the_runner_keeps_whole_when_the_split_is_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = iter([1.0, 2.0] * bs.TRIALS + [0.0] * 50)
    monkeypatch.setattr(bs, "_timed", lambda fn, feeds: (fn(feeds), next(fake)))
    calls: list[int] = []
    runner = bs.SplitRunner(lambda f: calls.append(len(f["x"])) or {"y": f["x"]}, ["x"], 2)
    x = np.zeros((64, 3), np.float32)
    for _ in range(2 * bs.TRIALS + 1):
        runner({"x": x})
    assert runner.decided == {64: bs.WHOLE}
    calls.clear()
    runner({"x": x})
    runner({"x": x[:40]})  # smaller than a size that ran whole: whole too, no trial
    assert calls == [64, 40]


def test_a_split_that_does_not_clearly_win_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """A split 0.95x the whole run's time is within a small VM's noise: the batch stays whole.
    The first (checked, cold) pair of runs is never timed: only warm runs decide."""
    timed: list[float] = []
    fake = iter([1.0, 0.95] * bs.TRIALS)

    def clock(fn: object, feeds: Mapping[str, np.ndarray]) -> tuple[object, float]:
        timed.append(next(fake))
        return fn(feeds), timed[-1]  # type: ignore[operator]

    monkeypatch.setattr(bs, "_timed", clock)
    runner = bs.SplitRunner(lambda f: {"y": f["x"]}, ["x"], 2)
    x = np.zeros((64, 3), np.float32)
    runner({"x": x})
    assert timed == [] and runner.decided == {}  # the checked pair: untimed
    for _ in range(2 * bs.TRIALS):
        runner({"x": x})
    assert len(timed) == 2 * bs.TRIALS and runner.decided == {64: bs.WHOLE}
    runner.close()


def test_a_runner_that_mixes_samples_is_caught_and_answered_whole() -> None:
    def centre(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": feeds["x"] - feeds["x"].mean(axis=0)}

    runner = bs.SplitRunner(centre, ["x"], 2)
    x = np.random.default_rng(0).standard_normal((32, 4))
    for _ in range(5):
        assert np.array_equal(runner({"x": x})["y"], centre({"x": x})["y"])
    assert runner.disabled is not None and "whole batch" in runner.disabled


class _FakeBlas(bs.BlasThreads):
    """Records the BLAS thread counts set; ``now`` is the count in force."""

    def __init__(self) -> None:
        super().__init__([], 1)
        self.now, self.calls = 1, []

    def set(self, n: int) -> None:
        self.now = n
        self.calls.append(n)


def test_the_runner_takes_wide_blas_when_it_is_fastest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clock-free: after the checked (untimed) split pair, whole and split in turn, then the checked
    wide-BLAS pair and its runs (its BLAS workers spin after a run: they must not slow the runs
    of the other ways); wide is the fastest by more than the margin, so the size runs with BLAS
    raised for the call only."""
    blas = _FakeBlas()
    seen: list[tuple[int, int]] = []  # (rows, BLAS threads in force) per run

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        seen.append((len(feeds["x"]), blas.now))
        return {"y": feeds["x"] + 1}

    fake = iter([1.0, 0.95, 1.0, 0.9, 1.1, 0.97, 0.5, 0.6, 0.55] + [0.0] * 50)
    monkeypatch.setattr(bs, "_timed", lambda fn, feeds: (fn(feeds), next(fake)))
    runner = bs.SplitRunner(run, ["x"], 2, blas)
    x = np.arange(128, dtype=np.int16).reshape(64, 2)
    for i in range(2 + 3 * bs.TRIALS):
        assert np.array_equal(runner({"x": x})["y"], x + 1)
        if i < 1 + 2 * bs.TRIALS:
            assert all(threads == 1 for _rows, threads in seen), i  # no wide run before the others' trials
    assert runner.decided == {64: bs.WIDE} and runner.wide_off is None and runner.disabled is None
    seen.clear()
    blas.calls.clear()
    runner({"x": x})
    assert seen == [(64, 2)] and blas.calls == [2, 1] and blas.now == 1  # raised for the call, then back
    runner.close()


def test_a_wide_blas_run_that_differs_is_turned_off() -> None:
    blas = _FakeBlas()

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": feeds["x"] * blas.now}  # a result that depends on the thread count: wrong

    runner = bs.SplitRunner(run, ["x"], 2, blas)
    x = np.ones((32, 2), np.float32)
    for _ in range(2 + 3 * bs.TRIALS):  # the wide way is checked after the whole/split trials
        assert np.array_equal(runner({"x": x})["y"], x)
    assert runner.wide_off is not None and "whole batch" in runner.wide_off and runner.disabled is None
    assert blas.now == 1
    runner.close()


def test_a_runner_without_a_blas_setter_never_offers_wide() -> None:
    runner = bs.SplitRunner(lambda f: {"y": f["x"]}, ["x"], 2)
    assert runner.wide_off is not None and bs.WIDE not in runner._ways()
    assert bs.SplitRunner(lambda f: {"y": f["x"]}, ["x"], 2, _FakeBlas())._ways() == [bs.SPLIT, bs.WIDE]


def test_small_batches_and_one_thread_run_whole() -> None:
    calls: list[int] = []
    runner = bs.SplitRunner(lambda f: calls.append(len(f["x"])) or {"y": f["x"]}, ["x"], 2)
    runner({"x": np.zeros((2 * bs.MIN_CHUNK - 1, 2))})
    bs.SplitRunner(lambda f: calls.append(len(f["x"])) or {"y": f["x"]}, ["x"], 1)({"x": np.zeros((64, 2))})
    assert calls == [2 * bs.MIN_CHUNK - 1, 64]


def _graph(node: onnx.NodeProto, *inits: onnx.TensorProto, batch: str | int = "N") -> ir.Model:
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return ir.from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize(("node", "inits", "why"), [
    (helper.make_node("ReduceMean", ["x"], ["y"], axes=[0]), (), "reduces over the sample axis"),
    (helper.make_node("ReduceMean", ["x"], ["y"]), (), "reduces over the sample axis"),
    (helper.make_node("Softmax", ["x"], ["y"], axis=0), (), "works along the sample axis"),
    (helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0]), (), "moves the sample axis"),
    (helper.make_node("Flatten", ["x"], ["y"], axis=0), (), "works along the sample axis"),
    (helper.make_node("Reshape", ["x", "s"], ["y"]), (helper.make_tensor("s", TensorProto.INT64, [2], [1, -1]),),
     "reshapes the sample axis"),
    (helper.make_node("Concat", ["x", "x"], ["y"], axis=0), (), "works along the sample axis"),
])
def test_static_rules_block_graphs_that_mix_samples(node: onnx.NodeProto, inits: tuple[onnx.TensorProto, ...],
                                                    why: str) -> None:
    model = _graph(node, *inits)
    from qprobe.backends.engine.graph import read_graph

    blocker = bs.split_blocker(read_graph(model), model)
    assert blocker is not None and why in blocker


def test_static_rules_let_per_sample_graphs_through() -> None:
    from qprobe.backends.engine.graph import read_graph

    for node, inits in [(helper.make_node("Softmax", ["x"], ["y"], axis=-1), ()),
                        (helper.make_node("Reshape", ["x", "s"], ["y"]),
                         (helper.make_tensor("s", TensorProto.INT64, [3], [0, 2, 2]),)),
                        (helper.make_node("ReduceMean", ["x"], ["y"], axes=[1]), ())]:
        model = _graph(node, *inits)
        assert bs.split_blocker(read_graph(model), model) is None
    fixed = _graph(helper.make_node("Relu", ["x"], ["y"]), batch=64)
    assert "fixed batch of 64" in str(bs.split_blocker(read_graph(fixed), fixed))


def test_the_tcn_runs_every_way_bit_exact_and_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split and wide-BLAS runs of the real TCN (numpy's OpenBLAS on 2 threads) give the whole
    program's codes; BLAS is back at its base count after every run."""
    from qprobe.threads import blas_threads

    session = _session(ir.load(packaged_example_dir() / "tcn_int8.onnx"), monkeypatch)
    assert session.info["threads"] == "2" and "batch_split" not in session.info
    blas = blas_threads()
    x = np.random.default_rng(1).standard_normal((64, 8, 1, 64)).astype(np.float32)
    whole = session.program.run({"window": x})
    for _ in range(2 + 3 * bs.TRIALS + 1):
        got = session.run({"window": x})
        assert all(np.array_equal(got[k], v) for k, v in whole.items())
        if blas is not None:
            from threadpoolctl import threadpool_info

            assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {blas.base}
    runner = session._runner
    assert runner.disabled is None and 64 in runner.decided
    assert blas is None or runner.wide_off is None  # the wide-BLAS run matched the whole one
    assert session.info["batch_ways"] == f"64: {runner.decided[64]}"  # recorded in the Trace's provenance
    session.close()
