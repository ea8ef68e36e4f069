"""Fixtures of the cluster tests: one LocalCluster of three workers, each owning one (fake) board."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "targets"))

BOARDS = 3


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    pytest.importorskip("distributed")
    from qprobe.execute import connect

    with connect(f"local:{BOARDS},board=1") as c:
        yield c
