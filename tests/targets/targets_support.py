"""Paths and template builders shared by the real-target tests (fixtures are in conftest.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

HERE = Path(__file__).parent
MUTATING = HERE / "mutating_target.py"
FAULTY = HERE / "faulty_target.py"
FAKE_STEDGEAI = HERE / "fake_stedgeai.py"
IO = "--model {model} --inputs {inputs} --outputs {outputs}"


def py(script: Path, *args: str) -> str:
    """A command template running ``script`` with this interpreter."""
    return " ".join([shlex.quote(sys.executable), shlex.quote(str(script)), *args])
