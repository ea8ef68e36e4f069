"""Shared test setup: make tests/ importable for the one test-model builder package ``tests/models``
(small models, random QDQ DAGs, the runtimes' models and the session-wide corpus)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))

if TYPE_CHECKING:
    from models.corpus import Built


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Every corpus model built once per test session (per xdist worker): name -> Built."""
    from models.corpus import build_all

    return build_all(tmp_path_factory.mktemp("corpus"))
