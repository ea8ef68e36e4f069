"""``resolve_inputs``: the one place that decides where a run's samples come from.

In order: an ``.npz`` the user names (``--inputs``), ``--random N`` samples, the bundled
example's inputs, the inputs a backend recorded (a board's ``val_io.npz``), and finally 10
uniform random samples with seed 42, which is what ``stedgeai validate`` uses by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.errors import InputError
from qprobe.model.inputs import InputSet, load_inputs, random_inputs

STEDGEAI_DEFAULT_SAMPLES = 10


@dataclass(frozen=True)
class InputRequest:
    """What the user asked for (all optional)."""

    path: Path | None = None
    random: int | None = None
    seed: int = 42
    random_mode: str = "uniform"
    example: Path | None = None  # a bundled example's inputs, used when nothing else is given


def resolve_inputs(model: ir.Model, request: InputRequest | None, backends: Sequence[Backend]) -> InputSet:
    """The samples for ``model``: see the module docstring for the order."""
    req = request or InputRequest()
    if req.path is not None and req.random is not None:
        raise InputError("give either --inputs or --random, not both")
    if req.path is not None:
        return load_inputs(model, req.path)
    if req.random is not None:
        return random_inputs(model, req.random, req.seed, req.random_mode)
    if req.example is not None:
        return load_inputs(model, req.example)
    for b in backends:
        recorded = b.recorded_inputs(model)
        if recorded:
            return InputSet(dict(recorded), f"recorded by {b.spec}")
    return random_inputs(model, STEDGEAI_DEFAULT_SAMPLES, req.seed, req.random_mode)
