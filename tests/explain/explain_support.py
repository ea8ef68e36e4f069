"""Helpers for explain's tests: simulated NPU targets as ``command:`` backends, and a run counter."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qprobe.backends import Backend, BackendBase, Capabilities, Session, create_backend

HERE = Path(__file__).parent


def target_spec(script: str) -> str:
    """A ``command:`` spec running one of the simulated NPUs in this folder."""
    return "command:" + shlex.join([sys.executable, str(HERE / script)]) + " {model} {inputs} {outputs}"


def command_target(script: str) -> Backend:
    return create_backend(target_spec(script), {"cache": "off", "cost": "0.1", "timeout": "1800"})


class Counting(BackendBase):
    """Counts ``open`` calls on a backend (one per target run), independently of explain's own count."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.spec, self.opened = backend, backend.spec, 0

    def capabilities(self) -> Capabilities:
        return self.backend.capabilities()

    def open(self, model: ir.Model) -> Session:
        self.opened += 1
        return self.backend.open(model)


def all_pairs_feeds(k: int = 4096) -> dict[str, np.ndarray]:
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    return {"a": a.astype(np.int8).reshape(-1, k), "b": b.astype(np.int8).reshape(-1, k)}
