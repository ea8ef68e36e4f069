"""The command target's options, template rendering and cache key (see ``backends.command``)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qprobe.errors import BackendError

KNOWN_OPTIONS = ("timeout", "retries", "max_outputs", "cost", "shell", "cache", "workdir", "keep", "resource")
PLACEHOLDERS = ("model", "inputs", "outputs", "workdir")
_FIELD = re.compile(r"\{(\w*)\}")
CACHE_SCHEMA = b"qprobe.command-cache/1"


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
    resource: str | None = None  # the Dask resource a run holds on a cluster (qprobe.execute)

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
                resource=_resource(o.get("resource", "")),
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


def _resource(v: str) -> str | None:
    if v and not re.fullmatch(r"\w+", v):
        raise ValueError(f"resource must be a name like board, got {v!r}")
    return v or None


def _cache_option(v: str) -> Path | None:
    return None if v.lower() in ("off", "none", "0", "no") else Path(v).expanduser()


def check_template(template: str, shell: bool) -> None:
    if not template:
        raise BackendError("command: needs a command template, e.g. command:'./run_on_board.sh {model} {inputs} "
                           "{outputs}'")
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


def anchor_paths(template: str, shell: bool, start: Path) -> str:
    """The template with each argument that names an existing file or folder relative to ``start``
    (where qprobe was started) made absolute: the command runs in its work directory, where
    ``./run_on_board.sh`` would not be found. Shell templates are left as written."""
    if shell:
        return template
    tokens = shlex.split(template)
    anchored = [str((start / t).resolve()) if _relative_existing(t, start) else t for t in tokens]
    return template if anchored == tokens else shlex.join(anchored)


def _relative_existing(token: str, start: Path) -> bool:
    if not token or token.startswith("-") or "{" in token or Path(token).is_absolute():
        return False
    try:
        return (start / token).exists()
    except OSError:  # a token too long or odd to be a path
        return False


def render(template: str, paths: Mapping[str, Path], shell: bool) -> list[str] | str:
    """The command to run: an argv list, or one shell string with quoted paths."""
    if shell:
        return _FIELD.sub(lambda m: shlex.quote(str(paths[m.group(1)])) if m.group(1) in paths else m.group(0),
                          template)
    return [_FIELD.sub(lambda m: str(paths[m.group(1)]), tok) for tok in shlex.split(template)]


def cache_key(model: bytes, inputs: Mapping[str, np.ndarray], template: str, shell: bool) -> str:
    h = hashlib.sha256(CACHE_SCHEMA)
    h.update(hashlib.sha256(model).digest())
    for name in sorted(inputs):
        a = np.ascontiguousarray(inputs[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    h.update(f"\0{template}\0shell={int(shell)}".encode())
    return h.hexdigest()
