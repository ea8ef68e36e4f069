"""Build an expensive, read-only test fixture once per test run, not once per xdist worker.

``built_once(factory, name, build)`` returns ``<run temp>/shared/<name>``: the first worker to ask
builds it under an exclusive file lock (``build(path)`` writes there), the others wait on the lock
and reuse it. A failed build leaves no marker, so the next asker builds again. Tests must only read
what they get (copy it to change it).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    base = factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(exist_ok=True)
    out, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            if out.exists():
                shutil.rmtree(out)
            build(out)
            done.touch()
    return out
