"""``command:TEMPLATE``: an external command runs the target (hardware in the loop).

For each run, qprobe makes a fresh work directory holding ``model.onnx`` (the model to run:
probed or cut) and ``inputs.npz`` (keys = input names, samples on axis 0), then runs the
template with ``{model}``, ``{inputs}``, ``{outputs}`` and ``{workdir}`` replaced by those
paths (``{outputs}`` is ``WORKDIR/outputs.npz``), in the work directory, without a shell
unless ``shell=1``. The command must write ``outputs.npz``: one array per graph output of
the model, keyed by output name, samples on axis 0, floats or integer codes (extra unit
dimensions and a leading ``[N, 1, ...]`` are accepted). qprobe never asks for tensors that carry
no per-sample data (shape computations, ``model.graph.sample_tensors``), so every requested output
has the sample axis first. The same paths are also in the
environment as ``QPROBE_MODEL``, ``QPROBE_INPUTS``, ``QPROBE_OUTPUTS``, ``QPROBE_WORKDIR``.

A crash, a timeout, a non-zero exit, missing or malformed outputs, NaN or Inf, wrong
shapes: each raises ``CommandRunError`` naming the kept work directory, where the model,
inputs, the command's stdout/stderr and ``error.txt`` stay. Results are cached on disk by
sha256(model bytes, input arrays, template, shell), so an interrupted run resumes without
running the hardware again; ``runs_executed`` and ``runs_cached`` count both kinds.

Options (``--target-opt key=value``):
  timeout=S (3600)  retries=N (0)  max_outputs=K (any)  cost=S per run (60)  shell=0|1 (0)
  cache=DIR|off (``$QPROBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/qprobe``, else
  ``~/.cache/qprobe``; then ``/command``)  workdir=DIR (``$TMPDIR/qprobe-runs``)  keep=0|1 (0)
  resource=NAME (none): on a Dask cluster (``--cluster``), each run holds one unit of that
  worker resource, e.g. ``resource=board`` with workers started ``--resources board=1``
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qprobe import serde
from qprobe.backends.base import BackendBase, Capabilities
from qprobe.backends.command_spec import (
    CommandOptions,
    anchor_paths,
    cache_key,
    check_template,
    render,
)
from qprobe.backends.recorded import tensor_shapes
from qprobe.backends.st import fit_shape
from qprobe.errors import BackendError, InputError, TargetRunError
from qprobe.fileio import atomic_save_npz, atomic_write_text
from qprobe.model.graph import graph_output_names
from qprobe.model.loader import model_bytes
from qprobe.model.quant import build_quant_index


class CommandRunError(TargetRunError):
    """A target command failed; ``workdirs`` are kept, ``stderr`` is the last attempt's."""

    def __init__(self, message: str, workdirs: list[Path], stderr: str) -> None:
        super().__init__(message)
        self.workdirs = workdirs
        self.stderr = stderr


class _RunFailure(Exception):
    """One attempt failed (internal: becomes a CommandRunError after the retries)."""


_RUN_LOG = {"executed": 0, "cached": 0}


def run_log() -> tuple[int, int]:
    """(target runs executed, target runs taken from the cache) by command targets in this process."""
    return _RUN_LOG["executed"], _RUN_LOG["cached"]


class CommandBackend(BackendBase):
    def __init__(self, template: str, options: Mapping[str, str] | None = None) -> None:
        self.options = CommandOptions.parse(options or {})
        check_template(template.strip(), self.options.shell)
        self.template = anchor_paths(template.strip(), self.options.shell, Path.cwd())
        self.spec = f"command:{self.template}"
        self.runs_executed = 0
        self.runs_cached = 0

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, str]) -> CommandBackend:
        return cls(arg, options)

    def capabilities(self) -> Capabilities:
        o = self.options
        return Capabilities(max_outputs_per_run=o.max_outputs, cost_per_run_s=o.cost_s, batch_size=None,
                            resource=o.resource)

    def open(self, model: ir.Model) -> CommandSession:
        outputs = graph_output_names(model)
        if self.options.max_outputs is not None and len(outputs) > self.options.max_outputs:
            raise BackendError(
                f"{self.spec} returns at most {self.options.max_outputs} tensors per run (max_outputs); "
                f"the model has {len(outputs)} outputs. Probe fewer tensors or raise max_outputs"
            )
        return CommandSession(self, model)


@dataclass(frozen=True)
class _Expected:
    shape: tuple[int | None, ...] | None
    dtype: np.dtype | None
    codes_ok: bool


class CommandSession:
    def __init__(self, backend: CommandBackend, model: ir.Model) -> None:
        self._b = backend
        self._model = model_bytes(model)
        shapes = tensor_shapes(model)
        index = build_quant_index(model)
        outs = {v.name: v for v in model.graph.outputs if v.name}
        self._expected = {
            n: _Expected(shapes.get(n), _np_dtype(v), index.quant_of(n) is not None) for n, v in outs.items()
        }
        o = backend.options
        self.info = {
            "command": backend.template,
            "cache": str(o.cache_dir) if o.cache_dir else "off",
            "workdir": str(o.workdir_base),
            "timeout_s": f"{o.timeout_s:g}",
            "retries": str(o.retries),
        }

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        arrays = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        n = int(next(iter(arrays.values())).shape[0]) if arrays else 1
        o = self._b.options
        key = cache_key(self._model, arrays, self._b.template, o.shell)
        cached = self._cache_get(key, n)
        if cached is not None:
            self._b.runs_cached += 1
            _RUN_LOG["cached"] += 1
            return cached
        t0 = time.monotonic()
        outputs = self._execute(key, arrays, n)
        self._b.runs_executed += 1
        _RUN_LOG["executed"] += 1
        self._cache_put(key, outputs, time.monotonic() - t0)
        return outputs

    def close(self) -> None:
        self._model = b""

    # -- one run, with retries ---------------------------------------------------------

    def _execute(self, key: str, arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        o = self._b.options
        failures: list[tuple[Path, str, str]] = []
        for attempt in range(1, o.retries + 2):
            wd = self._new_workdir(key, attempt, arrays)
            paths = {"model": wd / "model.onnx", "inputs": wd / "inputs.npz", "outputs": wd / "outputs.npz",
                     "workdir": wd}
            cmd = render(self._b.template, paths, o.shell)
            try:
                self._attempt(cmd, paths, wd)
                outputs = read_outputs(paths["outputs"], self._expected, n)
            except _RunFailure as f:
                failures.append((wd, str(f), _shown(cmd)))
                atomic_write_text(wd / "error.txt", f"{f}\ncommand: {_shown(cmd)}\n")
                continue
            if not o.keep:
                shutil.rmtree(wd, ignore_errors=True)
            return outputs
        raise _failure_error(failures, o.retries)

    def _new_workdir(self, key: str, attempt: int, arrays: Mapping[str, np.ndarray]) -> Path:
        base = self._b.options.workdir_base
        base.mkdir(parents=True, exist_ok=True)
        wd = Path(tempfile.mkdtemp(prefix=f"run-{key[:12]}-a{attempt}-", dir=base))
        (wd / "model.onnx").write_bytes(self._model)
        atomic_save_npz(wd / "inputs.npz", arrays)
        return wd

    def _attempt(self, cmd: list[str] | str, paths: Mapping[str, Path], wd: Path) -> None:
        o = self._b.options
        env = dict(os.environ)
        env.update({f"QPROBE_{k.upper()}": str(v) for k, v in paths.items()})
        with open(wd / "stdout.txt", "wb") as out, open(wd / "stderr.txt", "wb") as err:
            try:
                proc = subprocess.Popen(
                    cmd, cwd=wd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                    shell=o.shell, env=env, start_new_session=True,
                )
            except OSError as e:
                raise _RunFailure(f"the command could not be started ({e})") from e
            try:
                rc = proc.wait(timeout=o.timeout_s)
            except subprocess.TimeoutExpired as e:
                _terminate(proc)
                raise _RunFailure(f"the command timed out after {o.timeout_s:g} s and was killed; raise the limit with "
                                  f"--target-opt timeout=SECONDS") from e
            except BaseException:  # Ctrl-C: stop the command, keep the work directory
                _terminate(proc)
                raise
        if rc < 0:
            raise _RunFailure(f"the command crashed (killed by signal {_signal_name(-rc)})")
        if rc != 0:
            raise _RunFailure(f"the command exited with code {rc}")

    # -- cache ---------------------------------------------------------------------------

    def _cache_get(self, key: str, n: int) -> dict[str, np.ndarray] | None:
        d = self._b.options.cache_dir
        p = d / f"{key}.npz" if d else None
        if p is None or not p.exists():
            return None
        try:
            return read_outputs(p, self._expected, n)
        except _RunFailure:
            return None  # a stale or damaged entry is a miss; it is overwritten after the run

    def _cache_put(self, key: str, outputs: Mapping[str, np.ndarray], seconds: float) -> None:
        d = self._b.options.cache_dir
        if d is None:
            return
        d.mkdir(parents=True, exist_ok=True)
        meta = {"template": self._b.template, "model_sha256": hashlib.sha256(self._model).hexdigest(),
                "outputs": sorted(outputs), "seconds": round(seconds, 3), "created": time.time()}
        serde.save(d / f"{key}.json", meta)
        atomic_save_npz(d / f"{key}.npz", outputs)


def read_outputs(path: Path, expected: Mapping[str, _Expected], n: int) -> dict[str, np.ndarray]:
    """Read and check a command's outputs.npz; a problem raises ``_RunFailure``."""
    if not path.exists():
        raise _RunFailure(f"the command exited normally but wrote no {path.name}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _RunFailure(f"{path.name} is not a readable .npz of arrays ({type(e).__name__}: {e})") from e
    missing = [k for k in expected if k not in data]
    if missing:
        raise _RunFailure(f"{path.name} lacks output(s) {missing}; its keys are {sorted(data)}")
    return {k: _check_output(k, data[k], exp, n) for k, exp in expected.items()}


def _check_output(name: str, a: np.ndarray, exp: _Expected, n: int) -> np.ndarray:
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise _RunFailure(f"output {name!r} has dtype {a.dtype}; expected numbers")
    expects_codes = exp.codes_ok or (exp.dtype is not None and np.issubdtype(exp.dtype, np.integer))
    if np.issubdtype(a.dtype, np.integer) and not expects_codes:
        raise _RunFailure(f"output {name!r} holds integer {a.dtype} but the model's output is float and not quantized")
    if a.ndim == 0 or a.shape[0] != n:
        raise _RunFailure(f"output {name!r} has shape {a.shape}; expected {n} samples on axis 0")
    try:
        a = fit_shape(a, exp.shape, layout="NCHW", what=f"output {name!r}")
    except InputError as e:
        raise _RunFailure(str(e)) from e
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise _RunFailure(f"output {name!r} holds {int(bad.sum())} NaN/Inf value(s) (first in sample {first})")
    return a


def _failure_error(failures: list[tuple[Path, str, str]], retries: int) -> CommandRunError:
    wd, reason, cmd = failures[-1]
    stderr = _tail(wd / "stderr.txt")
    lines = [
        f"target command failed ({len(failures)} attempt(s), retries={retries}): {reason}",
        f"  command: {cmd}",
        f"  work directory kept: {wd} (model.onnx, inputs.npz, stdout.txt, stderr.txt, error.txt)",
    ]
    if stderr:
        lines += ["  stderr (last lines):", *("    | " + s for s in stderr.splitlines())]
    lines += [f"  earlier attempt: {w} ({r})" for w, r, _c in failures[:-1]]
    lines.append(f"  To reproduce by hand: cd {wd} && {cmd}")
    return CommandRunError("\n".join(lines), [w for w, _r, _c in failures], stderr)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_bytes()[-8192:].decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, then SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


def _shown(cmd: list[str] | str) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def _np_dtype(v: ir.Value) -> np.dtype | None:
    try:
        return np.dtype(v.dtype.numpy()) if v.dtype is not None else None
    except (TypeError, ValueError, AttributeError):
        return None
