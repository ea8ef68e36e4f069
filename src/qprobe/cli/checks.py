"""Output paths, checked before any work starts.

Every subcommand calls ``check_outputs`` first: a file output whose folder is missing or not
writable, a folder where a file is wanted (or a file where a folder is wanted), an output that
would overwrite one of the command's inputs, or an existing non-empty output folder without
``--force`` is one line and exit 2, before a single target run (a board session's runs are never
lost to a bad ``--json`` path). Output folders are then written through ``fileio.staged_dir``: a
staging folder beside them that replaces them whole at the end, so a stale file never sits
beside new ones.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated

import onnx_ir as ir
import typer

from qprobe.compare import TolerancePolicy
from qprobe.errors import InputError
from qprobe.model.quant import build_quant_index

ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output folder whole (default: refuse).")]

Paths = Mapping[str, Path | None]


def check_outputs(files: Paths | None = None, dirs: Paths | None = None, *, force: bool = False,
                  inputs: Iterable[Path | None] = (), replaceable: Callable[[Path], bool] | None = None) -> None:
    """Refuse (``InputError``) any output that cannot be written, before any work.

    ``files`` and ``dirs`` map an option name (``--json``) to its path (None: not given);
    ``inputs`` are the files the command reads (an output may not overwrite one); a folder for
    which ``replaceable`` is true (an earlier report of ours) is replaced without ``--force``."""
    seen: dict[Path, str] = {}
    ins = {_key(p): p for p in inputs if p is not None}
    for kind, group in (("file", files or {}), ("dir", dirs or {})):
        for option, path in group.items():
            if path is None:
                continue
            key = _key(path)
            if key in seen:
                raise InputError(f"{option} and {seen[key]} name the same path {path}; give each its own")
            if key in ins:
                raise InputError(f"{option} {path} is also an input of this command; writing it would destroy the "
                                 "input, pick another path")
            seen[key] = option
            if kind == "file":
                output_file(path, option)
            else:
                output_dir(path, option, force=force, replaceable=replaceable)


def output_file(path: Path, option: str) -> None:
    """A file qprobe will write: its folder exists and is writable, and it is not a folder."""
    p = Path(path)
    if str(p).endswith(("/", os.sep)) or p.is_dir():
        raise InputError(f"{option} {path}: is a folder, and a file is written here; give a file path such as "
                         f"{p / 'out.json'}")
    parent = p.parent
    if not parent.exists():
        raise InputError(f"{option} {path}: the folder {parent} does not exist; create it (mkdir -p {parent}) "
                         "or pick another path")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, not a folder; pick another path")
    if not _writable(parent):
        raise InputError(f"{option} {path}: cannot write into {parent} (permission denied); pick a writable place")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{option} {path}: the file exists and is read-only; pick another path or make it writable")


def output_dir(path: Path, option: str, *, force: bool = False,
               replaceable: Callable[[Path], bool] | None = None) -> None:
    """A folder qprobe will write whole: not a file, its nearest existing parent writable, and not an
    existing non-empty folder unless ``force`` (or ``replaceable``: an earlier output of ours)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{option} {path}: is a file, and a folder is written here; pick another path")
    anchor = p.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise InputError(f"{option} {path}: {anchor} is a file, not a folder; pick another path")
    if not _writable(anchor):
        raise InputError(f"{option} {path}: cannot write into {anchor} (permission denied); pick a writable place")
    if p.is_dir() and any(p.iterdir()) and not force and not (replaceable is not None and replaceable(p)):
        what = "is not empty and is not an earlier report" if replaceable is not None else "exists and is not empty"
        raise InputError(f"{option} {path}: the folder {what}; pass --force to replace it whole, or pick another path")


def check_input_file(path: Path | None, option: str) -> None:
    """A file the command reads: it exists and is a file."""
    if path is None:
        return
    if not Path(path).exists():
        raise InputError(f"{option} {path}: no such file")
    if Path(path).is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file")


def check_tolerance_names(policy: TolerancePolicy, model: ir.Model) -> None:
    """Every ``--tol-tensor`` name is a tensor of the model (a typo would silently apply to nothing)."""
    known = {str(v.name) for n in model.graph for v in n.outputs if v.name} | {str(v.name) for v in model.graph.inputs}
    unknown = [t for t in policy.per_tensor if t not in known]
    if unknown:
        near = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else "; `qprobe inspect MODEL` lists the tensors"
        raise InputError(f"--tol-tensor names {', '.join(map(repr, unknown))}, which is no tensor of the model{hint}")


def quantization_warning(model: ir.Model) -> str:
    """A warning when the model has no quantized tensor at all ('' for an int8 model)."""
    if build_quant_index(model).tensors:
        return ""
    return ("the model has no quantized tensor (no QuantizeLinear/DequantizeLinear or QLinear op): qprobe wants an "
            "int8 model; quantize it first (e.g. onnxruntime.quantization.quantize_static)")


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: tried for real (permission bits lie to root, and
    read-only mounts), with a hidden file removed at once."""
    try:
        fd, name = tempfile.mkstemp(prefix=".qprobe-write-check.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _key(p: Path) -> Path:
    return Path(os.path.abspath(p))
