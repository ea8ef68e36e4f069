"""Ctrl-C at several moments (imports, a target run, writing outputs): exit 130, one line, no
traceback, no partial file; a command target's finished runs are cached and a rerun says so."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_corpus import ENGINE, make_world
from test_cli_corpus import snapshot

from qprobe.backends import command
from qprobe.cli import entry

MUTATING = Path(__file__).resolve().parents[1] / "targets" / "mutating_target.py"
TARGET = "command:" + " ".join([shlex.quote(sys.executable), shlex.quote(str(MUTATING)), "--model {model}",
                                "--inputs {inputs} --outputs {outputs} --node add --factor 0.5"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def here(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "w"
    shutil.copytree(world, d)
    monkeypatch.chdir(d)
    monkeypatch.setenv("QPROBE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for key in ("executed", "cached"):  # the counts are per process; each test is one command
        monkeypatch.setitem(command._RUN_LOG, key, 0)
    return d


def qprobe(argv: list[str], monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["qprobe", *argv])
    with pytest.raises(SystemExit) as done:
        entry.main()
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def interrupt_on(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, call: int = 1) -> None:
    """Make ``owner.name`` raise KeyboardInterrupt on its ``call``-th call (the earlier ones run)."""
    real: Callable[..., Any] = getattr(owner, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] >= call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def assert_interrupted(code: int, err: str, here: Path, before: dict[str, Any]) -> None:
    assert code == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:") and "rerun the same command" in lines[0], err
    assert "Traceback" not in err
    assert snapshot(here) == before, "an interrupted command left files behind"


def test_during_the_imports(here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib
    import signal

    real = importlib.import_module

    def ctrl_c_arrives(name: str) -> Any:  # the deferred handler sees the signal, the import goes on
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # type: ignore[operator]
        return real(name)

    monkeypatch.setattr(entry.importlib, "import_module", ctrl_c_arrives)
    before = snapshot(here)
    code, _, err = qprobe(["compare", "model.onnx", "--json", "c.json"], monkeypatch, capsys)
    assert_interrupted(code, err, here, before)
    assert "no target run done" in err


MOMENTS = [
    ("localize-second-run", ["localize", "model.onnx", "--target", ENGINE, "--json", "d.json", "--bundle", "b"],
     "qprobe.localize.runner.LocalizeRunner._execute", 2),
    ("localize-writing-bundle", ["localize", "--example", "tcn", "--target", ENGINE, "--bundle", "b"],
     "qprobe.report.bundle.atomic_write_text", 2),
    ("compare-streaming-traces", ["compare", "model.onnx", "--random", "8", "--batch-size", "2", "--save-traces", "t",
                                  "--json", "c.json"], "qprobe.tensors.TraceFolder.save", 3),
    ("compare-writing-json", ["compare", "model.onnx", "--json", "c.json"], "qprobe.serde.save", 1),
    ("extract-writing-bundle", ["extract", "model.onnx", "--inputs", "c1", "--outputs", "r", "--bundle", "b"],
     "qprobe.report.bundle.atomic_save_npz", 2),
    ("diagnose-in-localize", ["diagnose", "--example", "tcn", "--target", ENGINE, "-o", "rep"],
     "qprobe.localize.runner.LocalizeRunner._execute", 2),
    ("diagnose-writing-report", ["diagnose", "model.onnx", "--target", ENGINE, "-o", "rep"],
     "qprobe.report.write.atomic_write_text", 1),
    ("example-copying", ["example", "tcn", "-o", "ex"], "qprobe.examples.tcn.shutil.copyfile", 3),
]


@pytest.mark.parametrize(("argv", "where", "call"), [m[1:] for m in MOMENTS], ids=[m[0] for m in MOMENTS])
def test_ctrl_c_leaves_nothing(argv: list[str], where: str, call: int, here: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    module, _, attr = where.rpartition(".")
    try:
        owner: Any = importlib.import_module(module)
    except ModuleNotFoundError:  # a class attribute: module.Class.method
        module, _, cls = module.rpartition(".")
        owner = getattr(importlib.import_module(module), cls)
    interrupt_on(monkeypatch, owner, attr, call)
    before = snapshot(here)
    code, _, err = qprobe(argv, monkeypatch, capsys)
    assert_interrupted(code, err, here, before)


def test_a_rerun_resumes_from_the_cache(here: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from qprobe.localize.runner import LocalizeRunner

    argv = ["localize", "model.onnx", "--target", TARGET, "--random", "4", "--json", "d.json"]
    interrupt_on(monkeypatch, LocalizeRunner, "_execute", 2)  # the first run completes, then Ctrl-C
    before = snapshot(here)
    code, _, err = qprobe(argv, monkeypatch, capsys)
    assert_interrupted(code, err, here, before)
    assert "interrupted: 1 target run(s) done and cached" in err
    monkeypatch.undo()
    monkeypatch.chdir(here)
    monkeypatch.setenv("QPROBE_CACHE_DIR", str(here.parent / "cache"))
    for key in ("executed", "cached"):
        monkeypatch.setitem(command._RUN_LOG, key, 0)
    code, out, err = qprobe(argv, monkeypatch, capsys)
    assert code == 0, out + err
    doc = json.loads((here / "d.json").read_text())
    assert doc["target_runs_cached"] == 1 and doc["target_runs_executed"] == doc["target_runs"] - 1 >= 1
    assert f"({doc['target_runs_executed']} ran, 1 from the cache)" in out
