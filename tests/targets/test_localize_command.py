"""qprobe localize through a command target that mutates one node: it names the node, prints
the target runs, and an interrupted localization resumes from the disk cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from targets_support import IO, MUTATING, py


def _localize(model: Path, tmp: Path, env: dict[str, str], strategy: str = "auto") -> subprocess.CompletedProcess[str]:
    template = py(MUTATING, IO, "--node add --factor 0.5")
    args = [
        sys.executable, "-m", "qprobe", "localize", str(model), "--ref", "ort", "--target", f"command:{template}",
        "--target-opt", f"cache={tmp / 'cache'}", "--target-opt", f"workdir={tmp / 'runs'}",
        "--random", "6", "--strategy", strategy, "--json", str(tmp / f"div-{strategy}.json"),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def _runs(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


@pytest.mark.parametrize("strategy", ["auto", "bisect"])
def test_localize_finds_the_mutated_node_and_resumes(model_path: Path, tmp_path: Path, strategy: str) -> None:
    count = tmp_path / "board-runs.txt"
    # the board "unplugs" after its first run: localization stops with a clear error
    first = _localize(model_path, tmp_path, {"QPROBE_TARGET_COUNT_FILE": str(count), "QPROBE_TARGET_MAX_RUNS": "1"},
                      strategy)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert _runs(count) == 1
    # plugged back in: the run already made is served from the cache, the rest execute
    second = _localize(model_path, tmp_path, {"QPROBE_TARGET_COUNT_FILE": str(count)}, strategy)
    assert second.returncode == 0, second.stdout + second.stderr
    m = re.search(r"target runs used: (\d+)", second.stdout)
    assert m is not None, second.stdout
    used = int(m.group(1))
    assert _runs(count) == used, "every target run but the cached one executed exactly once"
    assert "add (Add) introduces the error" in second.stdout
    div = json.loads((tmp_path / f"div-{strategy}.json").read_text())
    assert div["culprit"]["op"] == "add"
    # a third run costs the board nothing
    third = _localize(model_path, tmp_path, {"QPROBE_TARGET_COUNT_FILE": str(count)}, strategy)
    assert third.returncode == 0 and _runs(count) == used
