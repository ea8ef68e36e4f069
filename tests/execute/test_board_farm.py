"""A board farm: three fake boards, each owned by one Dask worker (``--resources board=1``).

localize through ``command:`` targets declared ``resource=board``: the runs overlap (two boards busy
at once), the number of target runs is the serial run's, and a localization interrupted by a worker
killed mid-run and a board unplugged resumes from the shared cache without repeating a finished run.
The boards log start and end times; nothing here asserts a duration, only that intervals intersect.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from targets_support import IO, py

from qprobe.backends import create_backend
from qprobe.errors import QprobeError
from qprobe.localize import Localization, localize
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model

from models.residual import qdq_residual_model

pytestmark = pytest.mark.cluster
FAKE_BOARD = Path(__file__).parent / "fake_board.py"


def _target(tmp: Path, sleep: float, cache: Path, until_overlap: float = 0.0) -> Any:
    template = py(FAKE_BOARD, "--log", str(tmp / "board.log"), "--sleep", str(sleep), "--unplug",
                  str(tmp / "unplugged"), "--until-overlap", str(until_overlap), IO, "--node add --factor 0.5")
    return create_backend(f"command:{template}", {"cache": str(cache), "workdir": str(tmp / "runs"),
                                                   "resource": "board", "cost": "1", "max_outputs": "2"})


def _log(tmp: Path) -> list[tuple[str, str, float, int]]:
    p = tmp / "board.log"
    lines = p.read_text().splitlines() if p.exists() else []
    return [(w, sha, float(t), int(pid)) for w, sha, t, pid in (line.split() for line in lines)]


def _intervals(events: list[tuple[str, str, float, int]]) -> list[tuple[float, float]]:
    starts = {pid: t for w, _s, t, pid in events if w == "start"}
    return [(starts[pid], t) for w, _s, t, pid in events if w == "end" and pid in starts]


def _on_cluster(cluster: Any, model: Any, target: Any, inputs: Any) -> Localization:
    from qprobe.execute import cluster_run_many, on_cluster

    return localize(model, create_backend("ort", {}), on_cluster(cluster, target), inputs, strategy="isolate",
                    run_many=cluster_run_many(cluster, "board"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Localization]:
    """The model, its inputs and the serial localization (one board at a time, no sleep). "isolate"
    with two outputs per run: several cut runs that do not depend on each other."""
    tmp = tmp_path_factory.mktemp("serial")
    model = load_model(qdq_residual_model(tmp))
    inputs = random_inputs(model, 6, seed=7)
    serial = localize(model, create_backend("ort", {}), _target(tmp, 0.0, tmp / "cache"), inputs, strategy="isolate")
    assert serial.divergence.culprit is not None and serial.divergence.culprit.op == "add"
    return model, inputs, serial


def test_runs_overlap_on_three_boards_and_their_number_is_the_serial_one(
        cluster: Any, setup: tuple[Any, Any, Localization], tmp_path: Path) -> None:
    model, inputs, serial = setup
    # each board waits (up to 60 s) for another run to be in progress: runs started together overlap
    # on a loaded machine too, and a scheduler that ran them one by one would leave none overlapping
    loc = _on_cluster(cluster, model, _target(tmp_path, 0.0, tmp_path / "cache", until_overlap=60.0), inputs)
    div, ref = loc.divergence, serial.divergence
    assert div.target_runs == ref.target_runs
    assert div.culprit is not None and ref.culprit is not None and div.culprit.op == ref.culprit.op
    events = _log(tmp_path)
    assert sum(w == "start" for w, *_ in events) == ref.target_runs  # each run executed once, none lost
    spans = _intervals(events)
    assert any(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(spans) for b0, b1 in spans[i + 1:]), spans


def test_a_resume_after_a_killed_worker_repeats_no_finished_run(
        cluster: Any, setup: tuple[Any, Any, Localization], tmp_path: Path) -> None:
    model, inputs, serial = setup
    cache = tmp_path / "cache"
    stop = threading.Event()
    killer = threading.Thread(target=_sabotage, args=(cluster, tmp_path, cache, stop), daemon=True)
    killer.start()
    try:
        with pytest.raises(QprobeError):  # the board unplugged after the worker died: the attempt fails
            _on_cluster(cluster, model, _target(tmp_path, 1.0, cache), inputs)
    finally:
        stop.set()
        killer.join(60)
    finished = {json.loads(p.read_text())["model_sha256"][:16] for p in cache.glob("*.json")}
    assert finished, "the first attempt finished no run before it stopped"
    before = len(_log(tmp_path))
    (tmp_path / "unplugged").unlink()
    loc = _on_cluster(cluster, model, _target(tmp_path, 1.0, cache), inputs)
    again = {sha for w, sha, _t, _p in _log(tmp_path)[before:] if w == "start"}
    assert not again & finished, "a run finished before the interruption was executed again"
    assert len(again) == serial.divergence.target_runs - len(finished)
    assert loc.divergence.target_runs == serial.divergence.target_runs
    assert loc.divergence.culprit is not None and loc.divergence.culprit.op == "add"


def _sabotage(cluster: Any, tmp: Path, cache: Path, stop: threading.Event) -> None:
    """Once a run has finished, SIGKILL a worker (its nanny restarts it and Dask moves its task);
    once another has finished, unplug the boards so that the attempt stops half-way."""
    while not stop.is_set() and not list(cache.glob("*.npz")):
        stop.wait(0.05)
    if stop.is_set():
        return
    pids = cluster.client.run(os.getpid)
    os.kill(sorted(pids.values())[0], signal.SIGKILL)
    while not stop.is_set() and len(list(cache.glob("*.npz"))) < 2:
        stop.wait(0.05)
    (tmp / "unplugged").write_text("")
