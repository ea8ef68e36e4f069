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
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qprobe import serde
from qprobe.backends.base import BackendBase, Capabilities
from qprobe.backends.recorded import tensor_shapes
from qprobe.backends.st import fit_shape
from qprobe.errors import BackendError, InputError, TargetRunError
from qprobe.fileio import atomic_save_npz, atomic_write_text
from qprobe.model.graph import graph_output_names
from qprobe.model.loader import model_bytes
from qprobe.model.quant import build_quant_index

KNOWN_OPTIONS = ("timeout", "retries", "max_outputs", "cost", "shell", "cache", "workdir", "keep")
PLACEHOLDERS = ("model", "inputs", "outputs", "workdir")
_FIELD = re.compile(r"\{(\w*)\}")
_CACHE_SCHEMA = b"qprobe.command-cache/1"


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


def default_cache_dir() -> Path:
    root = os.environ.get("QPROBE_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    return (base if os.environ.get("QPROBE_CACHE_DIR") else base / "qprobe") / "command"


@dataclass(frozen=True)
class CommandOptions:
    timeout_s: float = 3600.0
    retries: int = 0
    max_outputs: int | None = None
    cost_s: float = 60.0
    shell: bool = False
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    workdir_base: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "qprobe-runs")
    keep: bool = False

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> CommandOptions:
        unknown = sorted(set(options) - set(KNOWN_OPTIONS))
        if unknown:
            raise BackendError(f"unknown option(s) {unknown} for command:; known: {', '.join(KNOWN_OPTIONS)}")
        o = dict(options)
        try:
            cache = o.get("cache")
            return cls(
                timeout_s=_positive(float(o.get("timeout", cls.timeout_s)), "timeout"),
                retries=max(0, int(o.get("retries", cls.retries))),
                max_outputs=int(o["max_outputs"]) if o.get("max_outputs") else None,
                cost_s=float(o.get("cost", cls.cost_s)),
                shell=_flag(o.get("shell", "0"), "shell"),
                cache_dir=default_cache_dir() if cache is None else _cache_option(cache),
                workdir_base=Path(o["workdir"]).expanduser() if o.get("workdir") else cls().workdir_base,
                keep=_flag(o.get("keep", "0"), "keep"),
            )
        except ValueError as e:
            raise BackendError(f"bad option value for command: ({e}); e.g. timeout=600 retries=2 cost=90") from e


def _positive(v: float, name: str) -> float:
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def _flag(v: str, name: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be 0 or 1, got {v!r}")


def _cache_option(v: str) -> Path | None:
    return None if v.lower() in ("off", "none", "0", "no") else Path(v).expanduser()


class CommandBackend(BackendBase):
    def __init__(self, template: str, options: Mapping[str, str] | None = None) -> None:
        self.template = template.strip()
        self.options = CommandOptions.parse(options or {})
        self.spec = f"command:{self.template}"
        _check_template(self.template, self.options.shell)
        self.runs_executed = 0
        self.runs_cached = 0

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, str]) -> CommandBackend:
        return cls(arg, options)

    def capabilities(self) -> Capabilities:
        o = self.options
        return Capabilities(max_outputs_per_run=o.max_outputs, cost_per_run_s=o.cost_s, batch_size=None)

    def open(self, model: ir.Model) -> CommandSession:
        outputs = graph_output_names(model)
        if self.options.max_outputs is not None and len(outputs) > self.options.max_outputs:
            raise BackendError(
                f"{self.spec} returns at most {self.options.max_outputs} tensors per run (max_outputs); "
                f"the model has {len(outputs)} outputs. Probe fewer tensors or raise max_outputs"
            )
        return CommandSession(self, model)


def _check_template(template: str, shell: bool) -> None:
    if not template:
        raise BackendError("command: needs a command template, e.g. command:'./run_on_board.sh {model} {inputs} {outputs}'")
    if not shell:
        try:
            shlex.split(template)
        except ValueError as e:
            raise BackendError(f"command template {template!r} cannot be split into arguments: {e}") from e
        unknown = [m.group(1) for m in _FIELD.finditer(template) if m.group(1) not in PLACEHOLDERS]
        if unknown:
            raise BackendError(
                f"unknown placeholder(s) {sorted(set(unknown))} in {template!r}; known: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )


def render(template: str, paths: Mapping[str, Path], shell: bool) -> list[str] | str:
    """The command to run: an argv list, or one shell string with quoted paths."""
    if shell:
        return _FIELD.sub(lambda m: shlex.quote(str(paths[m.group(1)])) if m.group(1) in paths else m.group(0), template)
    return [_FIELD.sub(lambda m: str(paths[m.group(1)]), tok) for tok in shlex.split(template)]


def cache_key(model: bytes, inputs: Mapping[str, np.ndarray], template: str, shell: bool) -> str:
    h = hashlib.sha256(_CACHE_SCHEMA)
    h.update(hashlib.sha256(model).digest())
    for name in sorted(inputs):
        a = np.ascontiguousarray(inputs[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    h.update(f"\0{template}\0shell={int(shell)}".encode())
    return h.hexdigest()


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
            paths = {"model": wd / "model.onnx", "inputs": wd / "inputs.npz", "outputs": wd / "outputs.npz", "workdir": wd}
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
                raise _RunFailure(f"the command timed out after {o.timeout_s:g} s and was killed; raise the limit with --target-opt timeout=SECONDS") from e
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
    if np.issubdtype(a.dtype, np.integer) and not exp.codes_ok and not (exp.dtype and np.issubdtype(exp.dtype, np.integer)):
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
