"""Atomic file writes: a file qprobe writes is either complete or absent, never partial."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary name, then rename (np.savez appends .npz itself)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.npz")
    try:
        np.savez(tmp, **dict(arrays))  # type: ignore[arg-type]
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
