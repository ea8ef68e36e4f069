"""command:TEMPLATE: runs, caching, and every failure mode with its message and kept files."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from targets_support import FAULTY, IO, MUTATING, py

from qprobe.backends import create_backend
from qprobe.backends.command import CommandBackend, CommandRunError, cache_key
from qprobe.backends.onnxruntime import OrtBackend
from qprobe.errors import BackendError, TargetRunError
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_bytes


def _backend(tmp: Path, template: str, **opts: str) -> CommandBackend:
    options = {"cache": str(tmp / "cache"), "workdir": str(tmp / "runs"), **opts}
    b = create_backend(f"command:{template}", options)
    assert isinstance(b, CommandBackend)
    return b


def _ort(model: ir.Model, inputs: InputSet) -> dict[str, np.ndarray]:
    return OrtBackend(fused=False).open(model).run(inputs.arrays)


def test_outputs_are_the_commands_and_the_workdir_goes_away(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    b = _backend(tmp_path, py(FAULTY, "ok", IO))
    caps = b.capabilities()
    assert caps.batch_size is None and caps.cost_per_run_s == 60.0 and caps.accepts_models
    out = b.open(model).run(inputs.arrays)
    ref = _ort(model, inputs)
    assert set(out) == set(ref) and all(np.array_equal(out[k], ref[k]) for k in ref)
    assert (b.runs_executed, b.runs_cached) == (1, 0)
    assert list((tmp_path / "runs").iterdir()) == []  # keep=0: a successful run leaves nothing
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_a_second_run_is_served_from_the_cache(tmp_path: Path, model: ir.Model, inputs: InputSet,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    count = tmp_path / "count.txt"
    monkeypatch.setenv("QPROBE_TARGET_COUNT_FILE", str(count))
    template = py(MUTATING, IO, "--node add --factor 0.5")
    first = _backend(tmp_path, template, keep="1").open(model).run(inputs.arrays)
    again = _backend(tmp_path, template)  # a new process would build a new backend, too
    second = again.open(model).run(inputs.arrays)
    assert (again.runs_executed, again.runs_cached) == (0, 1)
    assert len(count.read_text().splitlines()) == 1  # the "hardware" ran once
    assert all(np.array_equal(first[k], second[k]) for k in first)
    kept = list((tmp_path / "runs").iterdir())  # keep=1 kept the first run's directory
    assert len(kept) == 1 and {"model.onnx", "inputs.npz", "outputs.npz",
                               "stdout.txt"} <= {p.name for p in kept[0].iterdir()}


def test_the_cache_key_covers_model_inputs_and_template(model: ir.Model, inputs: InputSet) -> None:
    mb = model_bytes(model)
    base = cache_key(mb, inputs.arrays, "t", False)
    other = {k: v.copy() for k, v in inputs.arrays.items()}
    next(iter(other.values())).reshape(-1)[0] += 1e-3
    assert base == cache_key(mb, dict(inputs.arrays), "t", False)
    assert len({base, cache_key(mb + b"x", inputs.arrays, "t", False), cache_key(mb, other, "t", False),
                cache_key(mb, inputs.arrays, "t2", False), cache_key(mb, inputs.arrays, "t", True)}) == 5


# the stand-in prints its mode before any import (about 50 ms after its start on an idle machine),
# then sleeps for 600 s: 10 s leaves a margin of two orders of magnitude for a loaded machine
HANG_TIMEOUT_S = 10
FAILURES = [
    ("crash", "crashed (killed by signal SIGSEGV)", "segfaulting now"),
    ("hang", f"timed out after {HANG_TIMEOUT_S} s and was killed", "mode=hang"),
    ("exit", "exited with code 3", "board not found on /dev/ttyACM0"),
    ("missing", "exited normally but wrote no outputs.npz", "mode=missing"),
    ("malformed", "outputs.npz is not a readable .npz", "mode=malformed"),
    ("pickled", "outputs.npz is not a readable .npz", "mode=pickled"),
    ("nan", "holds 2 NaN/Inf value(s) (first in sample 1)", "mode=nan"),
    ("wrong-shape", "does not fit the model's [N, 3]", "mode=wrong-shape"),
    ("missing-key", "lacks output(s) ['y']; its keys are ['y_renamed']", "mode=missing-key"),
]


@pytest.mark.parametrize(("mode", "message", "stderr"), FAILURES, ids=[f[0] for f in FAILURES])
def test_each_failure_is_a_clear_error_that_keeps_everything(
    tmp_path: Path, model: ir.Model, inputs: InputSet, mode: str, message: str, stderr: str
) -> None:
    b = _backend(tmp_path, py(FAULTY, mode, IO), timeout=str(HANG_TIMEOUT_S) if mode == "hang" else "600")
    with pytest.raises(CommandRunError) as info:
        b.open(model).run(inputs.arrays)
    err = info.value
    assert isinstance(err, TargetRunError) and isinstance(err, BackendError)  # CLI: message, exit 2
    text = str(err)
    assert message in text and stderr in text and stderr in err.stderr
    (wd,) = err.workdirs
    assert f"work directory kept: {wd}" in text
    assert {"model.onnx", "inputs.npz", "stdout.txt", "stderr.txt", "error.txt"} <= {p.name for p in wd.iterdir()}
    assert (wd / "model.onnx").read_bytes() == model_bytes(model)
    with np.load(wd / "inputs.npz") as z:
        assert all(np.array_equal(z[k], v) for k, v in inputs.arrays.items())
    assert message in (wd / "error.txt").read_text()
    assert not list((tmp_path / "cache").glob("*.npz")) if (tmp_path / "cache").exists() else True
    assert (b.runs_executed, b.runs_cached) == (0, 0)


def test_retries_run_again_in_a_fresh_directory(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    state = tmp_path / "state"
    flaky = py(FAULTY, "flaky", IO, "--state", shlex.quote(str(state)))
    with pytest.raises(CommandRunError, match="1 attempt\\(s\\), retries=0"):
        _backend(tmp_path / "a", flaky).open(model).run(inputs.arrays)
    state.unlink()
    b = _backend(tmp_path / "b", flaky, retries="2")
    out = b.open(model).run(inputs.arrays)
    assert set(out) == {"y"} and b.runs_executed == 1
    kept = list((tmp_path / "b" / "runs").iterdir())
    assert len(kept) == 1 and "transient link error" in (kept[0] / "stderr.txt").read_text()


def test_shell_templates_and_environment(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    script = py(FAULTY, "ok", '--model "$QPROBE_MODEL" --inputs {inputs} --outputs {outputs}')
    b = _backend(tmp_path, f"{script} && echo done > {{workdir}}/done.txt", shell="1", keep="1")
    assert set(b.open(model).run(inputs.arrays)) == {"y"}
    (wd,) = list((tmp_path / "runs").iterdir())
    assert (wd / "done.txt").read_text().strip() == "done"


def test_option_and_template_errors_list_what_is_known(model: ir.Model) -> None:
    with pytest.raises(BackendError, match="known: timeout, retries, max_outputs, cost, shell, cache, workdir, keep"):
        create_backend("command:run {model}", {"tmeout": "3"})
    with pytest.raises(BackendError, match=r"unknown placeholder\(s\) \['output'\].*\{outputs\}"):
        create_backend("command:run {model} {output}")
    with pytest.raises(BackendError, match="timeout must be > 0"):
        create_backend("command:run {model}", {"timeout": "0"})
    b = create_backend("command:run {model}", {"max_outputs": "0", "cost": "1.5"})
    assert b.capabilities().max_outputs_per_run == 0 and b.capabilities().cost_per_run_s == 1.5
    with pytest.raises(BackendError, match="at most 0 tensors per run"):
        b.open(model)


def test_a_missing_executable_is_reported(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    b = _backend(tmp_path, f"{tmp_path}/no-such-tool {{model}}")
    with pytest.raises(CommandRunError, match="could not be started"):
        b.open(model).run(inputs.arrays)


def test_cache_off_runs_every_time(tmp_path: Path, model: ir.Model, inputs: InputSet) -> None:
    b = _backend(tmp_path, py(FAULTY, "ok", IO), cache="off")
    s = b.open(model)
    s.run(inputs.arrays)
    s.run(inputs.arrays)
    assert (b.runs_executed, b.runs_cached) == (2, 0)
    assert sys.executable in s.info["command"] and s.info["cache"] == "off"


def test_ctrl_c_stops_the_command_and_keeps_its_directory(tmp_path: Path, model: ir.Model, inputs: InputSet,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real_wait = subprocess.Popen.wait
    calls: list[float | None] = []

    def interrupted(self: subprocess.Popen[bytes], timeout: float | None = None) -> int:
        calls.append(timeout)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", interrupted)
    b = _backend(tmp_path, py(FAULTY, "hang", IO))
    with pytest.raises(KeyboardInterrupt):
        b.open(model).run(inputs.arrays)
    (wd,) = list((tmp_path / "runs").iterdir())
    assert {"model.onnx", "inputs.npz", "stderr.txt"} <= {p.name for p in wd.iterdir()}
    assert len(calls) >= 2 and (b.runs_executed, b.runs_cached) == (0, 0)  # terminated, then reaped


def test_a_script_relative_to_the_start_directory_is_found(tmp_path: Path, model: ir.Model, inputs: InputSet,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs in its work directory; ./run_on_board.sh is where qprobe was started."""
    start = tmp_path / "project"
    start.mkdir()
    script = start / "run_on_board.sh"
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(MUTATING))} "
                      '--model "$1" --inputs "$2" --outputs "$3" --node none\n')
    script.chmod(0o755)
    monkeypatch.chdir(start)
    b = _backend(tmp_path, "./run_on_board.sh {model} {inputs} {outputs} --not-a-path")
    assert b.template.split()[0] == str(script) and b.template.endswith("--not-a-path")
    out = b.open(model).run(inputs.arrays)
    ref = _ort(model, inputs)
    assert all(np.array_equal(out[k], ref[k]) for k in ref)
