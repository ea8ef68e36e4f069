"""The one JSON codec of qprobe: strict JSON out, schema-checked JSON in, provenance.

Every document qprobe writes goes through ``dumps``/``save``: non-finite floats become
``null`` (browsers and strict parsers reject bare ``NaN``), numpy scalars and arrays become
plain numbers and lists, tuples become lists, and the output is deterministic (keys keep
their insertion order). ``load(path, schema)`` reads a document back and raises a typed
``SchemaError`` when it is not JSON, carries another kind of schema, or a newer version of
the right one. ``provenance()`` is the block every document carries: qprobe's and the
runtimes' versions (read from package metadata, so that nothing heavy is imported), the
Python version, the platform and the command line.
"""

from __future__ import annotations

import functools
import json
import math
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from qprobe.errors import QprobeError
from qprobe.fileio import atomic_write_text

_VERSIONED = ("qprobe", "numpy", "onnx", "onnx-ir", "onnxruntime", "openvino")


class SchemaError(QprobeError):
    """A JSON document is unreadable, of another kind, or newer than this qprobe reads."""


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats -> None, numpy -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(doc: Any, indent: int | None = 2) -> str:
    """Strict JSON text (``allow_nan=False`` after ``plain``, so no bare NaN ever escapes)."""
    return json.dumps(plain(doc), indent=indent, allow_nan=False)


def save(path: str | Path, doc: Any) -> None:
    """Write ``doc`` atomically as strict JSON."""
    atomic_write_text(Path(path), dumps(doc) + "\n")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str, schema: str | None = None, source: str = "<text>") -> dict[str, Any]:
    """Parse strict JSON; with ``schema`` (``qprobe.kind/N``) check the document's kind and version."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise SchemaError(f"{source} is not valid JSON ({e}); was it written by qprobe?") from e
    if not isinstance(doc, dict):
        raise SchemaError(f"{source} holds a JSON {type(doc).__name__}, not a qprobe document")
    if schema is not None:
        check_schema(doc, schema, source)
    return doc


def load(path: str | Path, schema: str | None = None) -> dict[str, Any]:
    """Read a qprobe JSON document, checking its ``schema`` (kind and version)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SchemaError(f"cannot read {str(p)!r}: {e.strerror or e}") from e
    return loads(text, schema, str(p))


def check_schema(doc: dict[str, Any], schema: str, source: str) -> None:
    kind, _, version = schema.rpartition("/")
    found = doc.get("schema")
    if not isinstance(found, str) or "/" not in found:
        raise SchemaError(f"{source} has no qprobe schema (expected {schema!r}, found {found!r})")
    f_kind, _, f_version = found.rpartition("/")
    if f_kind != kind:
        raise SchemaError(f"{source} is a {f_kind!r} document, not {kind!r}; pass the right file")
    if _version(f_version) > _version(version):
        raise SchemaError(
            f"{source} has schema {found!r}, newer than this qprobe reads ({schema!r}); upgrade qprobe"
        )


def _version(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1 << 30  # an unreadable version is treated as newer


def versions() -> dict[str, str]:
    """Installed versions of qprobe and the runtimes it may use (absent ones are left out).
    Read once per process: an imported package's own ``__version__`` (its distribution's
    version), the installed distributions' metadata for the others (~1 ms a lookup; every
    comparison and report records them)."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name in _VERSIONED:
        loaded = getattr(sys.modules.get(name.replace("-", "_")), "__version__", None)
        if isinstance(loaded, str):
            out.append((name, loaded))
            continue
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


def command_line() -> str:
    """How this process was started, as a shell line (``qprobe ...`` for the CLI)."""
    exe = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("")
    if exe.name == "qprobe" or (exe.name == "__main__.py" and exe.parent.name == "qprobe"):
        return shlex.join(["qprobe", *sys.argv[1:]])
    return shlex.join(sys.argv)


def provenance(**extra: Any) -> dict[str, Any]:
    """The provenance block of a document: versions, Python, platform, command line, ``extra``."""
    return {
        "versions": versions(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "command": command_line(),
        **plain(extra),
    }
