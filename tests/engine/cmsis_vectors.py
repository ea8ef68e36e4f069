"""Access to the CMSIS-NN unit-test vectors in tests/data/cmsis-nn (see FORMAT.md and NOTICE.md there).

They are test data of this repository (Apache-2.0, with their licence text), so every clone runs
the bit-exactness tests; a missing folder fails them instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(os.environ.get("QPROBE_CMSIS_VECTORS", Path(__file__).resolve().parents[1] / "data/cmsis-nn"))


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
    found = [Case(p) for p in sorted(folder.glob("*.npz"))] if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"CMSIS-NN vectors missing at {folder}: they are test data of the repository "
                                "(tests/data/cmsis-nn); restore them from git")
    return found


def params(kind: str) -> Iterator[object]:
    """pytest params for every case of ``kind`` (collection fails when the vectors are missing)."""
    for c in cases(kind):
        yield pytest.param(c, id=c.name)
