"""The one call from fix to explain (CONTRACTS.md): a fitted profile and an envelope, from the target.

Fix needs only the explanation's ``profile`` (TOML text of the fitted engine profile), its
``envelope`` and how many target runs it took; everything else it measures itself. The
import is by name so that fix stays loosely coupled to explain (and runs with ``--profile``
where explain is not installed).
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.backends.engine.backend import EngineBackend
from qprobe.backends.engine.profiles import profile_from_dict
from qprobe.errors import ProfileError, QprobeError
from qprobe.fix.envelope import from_explanation
from qprobe.model.inputs import InputSet
from qprobe.rewrite import RatioEnvelope


@dataclass(frozen=True)
class Explained:
    emulation: Backend
    envelope: RatioEnvelope | None
    target_runs: int
    statement: str


def explain_function() -> Callable[..., Any]:
    """``qprobe.explain.explain``, or a user error saying what to pass instead when it is not installed."""
    try:
        return importlib.import_module("qprobe.explain").explain
    except (ImportError, AttributeError) as e:
        raise QprobeError(
            "fix needs a numerics profile of the target: pass --profile fitted.toml (from `qprobe explain "
            "--profile-out`) or --emulate PROFILE; qprobe.explain is not available in this installation"
        ) from e


def explain_emulation(model: ir.Model, ref: Backend, target: Backend, inputs: InputSet, node: str) -> Explained:
    """Run ``qprobe.explain.explain`` on the culprit, with characterization runs for the envelope; its
    fitted profile becomes the emulation (without an envelope, fix measures one on the emulation)."""
    explain = explain_function()
    expl = explain(model, ref, target, inputs, node=node, characterize=True)
    if not getattr(expl, "explained", False) or not getattr(expl, "profile", None):
        raise QprobeError(
            f"explain found no arithmetic hypothesis that reproduces the target's output of {node}; "
            "fix cannot predict candidates without one: pass --profile or --emulate PROFILE"
        )
    return Explained(emulation_of(str(expl.profile), f"explain:{node}"),
                     None if expl.envelope is None else from_explanation(expl.envelope),
                     int(getattr(expl, "target_runs", 0)), str(getattr(expl.envelope, "statement", "")))


def emulation_of(profile_toml: str, source: str) -> Backend:
    """An engine backend running a profile given as TOML text."""
    try:
        data = tomllib.loads(profile_toml)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"the fitted profile from {source} is not valid TOML: {e}") from e
    return EngineBackend(profile_from_dict(data, source))
