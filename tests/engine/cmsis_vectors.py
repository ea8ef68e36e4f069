"""Access to the CMSIS-NN unit-test vectors in ../shared/vectors/cmsis-nn (see FORMAT.md there).

Tests that use them skip with a clear message when the folder is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(os.environ.get("QPROBE_CMSIS_VECTORS", Path(__file__).resolve().parents[3] / "shared/vectors/cmsis-nn"))


class Case:
    """One .npz case: ``c.arr('input')`` reads ``<case>_input``, ``c.mac('PAD_X')`` reads ``<CASE>_PAD_X``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = np.load(path)
        self.name = str(self.data["case"])

    def arr(self, key: str) -> np.ndarray:
        return self.data[f"{self.name}_{key}"]

    def has(self, key: str) -> bool:
        return f"{self.name}_{key}" in self.data.files

    def mac(self, key: str, default: int | None = None) -> int:
        k = f"{self.name.upper()}_{key}"
        if k not in self.data.files:
            if default is None:
                raise KeyError(k)
            return default
        return int(self.data[k])

    def __repr__(self) -> str:
        return self.name


def cases(kind: str) -> list[Case]:
    folder = ROOT / kind
    if not folder.is_dir():
        return []
    return [Case(p) for p in sorted(folder.glob("*.npz"))]


def params(kind: str) -> Iterator[object]:
    """pytest params for every case of ``kind``; one skipped param when the vectors are absent."""
    found = cases(kind)
    if not found:
        yield pytest.param(None, marks=pytest.mark.skip(
            reason=f"CMSIS-NN vectors not found at {ROOT / kind} (set QPROBE_CMSIS_VECTORS or provide ../shared)"))
        return
    for c in found:
        yield pytest.param(c, id=c.name)
