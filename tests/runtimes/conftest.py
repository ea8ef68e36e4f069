"""Fixtures of the runtime-backend tests: the tiny models of rt_models, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from models.runtimes import MODELS, Built


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    root = tmp_path_factory.mktemp("rt_models")
    return {name: build(root / name) for name, build in MODELS.items()}
