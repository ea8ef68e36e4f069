"""A small TOML writer for profile files: scalars first, then tables, keys quoted when needed.

Values: strings, booleans, integers and finite floats; nested mappings become tables
(``[ops.Add]``, ``[nodes."a.b"]``). Python has a TOML reader (``tomllib``) but no writer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    return k if _BARE.match(k) else _string(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML profiles hold finite numbers only, got {v}")
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    raise TypeError(f"cannot write {type(v).__name__} {v!r} to TOML")


def _table(path: list[str], table: Mapping[str, Any], lines: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    subtables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (scalars or not subtables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
    for k, v in subtables:
        _table([*path, k], v, lines)


def dumps(doc: Mapping[str, Any], header: str = "") -> str:
    """``doc`` as TOML text; ``header`` lines become comments at the top."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    _table([], doc, lines)
    return "\n".join(lines).lstrip("\n") + "\n"
