"""Observations of one op: its input codes as the target received them and its output codes.

Sources, best first: the arrays of localize's isolated run of the op, a repro bundle's
``inputs.npz``/``expected.npz``/``observed.npz``, or an isolated run made here (the cut
of the op at its int8 boundary, fed with the reference's codes of its inputs). For a
target that cannot run models, the recorded tensors themselves (then the target's own
input codes, with the reference run on the cut for the expected output). Each input the
target received is checked against the reference's codes in the whole-model run.
Memory stays bounded: above ``OBS_ELEMENTS`` output elements, evenly spread samples are
kept (and ``sampled`` says so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qprobe.compare.result import TensorComparison
from qprobe.errors import InputError
from qprobe.explain.runs import OBS_ELEMENTS, spread


@dataclass(frozen=True)
class InputCheck:
    tensor: str
    exact_share: float | None
    verdict: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "exact_share": self.exact_share, "verdict": self.verdict, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InputCheck:
        return cls(d["tensor"], d["exact_share"], d["verdict"], d["reason"])

    @classmethod
    def of(cls, row: TensorComparison) -> InputCheck:
        return cls(row.name, None if row.lsb is None else row.lsb.exact_share, row.verdict, row.reason)


@dataclass(frozen=True)
class Observation:
    node: str
    op_type: str
    inputs: dict[str, np.ndarray]  # cut input (code tensor) -> codes fed, kept samples
    expected: np.ndarray  # the reference's output codes
    observed: np.ndarray  # the target's output codes
    samples: np.ndarray  # indices of the kept samples
    total_samples: int
    source: str
    input_checks: tuple[InputCheck, ...] = ()

    @property
    def sampled(self) -> bool:
        return self.samples.size < self.total_samples

    def describe(self) -> str:
        kept = f"{self.samples.size} of {self.total_samples} samples (evenly spread, memory bound)" \
            if self.sampled else f"all {self.total_samples} samples"
        return f"{self.observed.size} output codes from {self.source}, {kept}"


def observation(
    node: str, op_type: str, inputs: Mapping[str, np.ndarray], expected: np.ndarray, observed: np.ndarray,
    source: str, checks: Sequence[InputCheck] = (),
) -> Observation:
    """Keep evenly spread samples so that at most ``OBS_ELEMENTS`` output codes remain."""
    total = int(observed.shape[0])
    if expected.shape != observed.shape:
        raise InputError(f"{source}: the target's output of {node} has shape {observed.shape}, the reference's "
                         f"{expected.shape}; explain needs the same codes on both sides")
    keep = spread(total, observed[0].size if total else 1, OBS_ELEMENTS)
    return Observation(node, op_type, {k: np.asarray(v)[keep] for k, v in inputs.items()}, expected[keep],
                       observed[keep], keep, total, source, tuple(checks))


def from_bundle(folder: Path) -> tuple[str, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(culprit node, inputs, expected, observed) of a repro bundle written by ``localize --bundle``."""
    folder = Path(folder)
    need = ["divergence.json", "inputs.npz", "expected.npz", "observed.npz"]
    missing = [n for n in need if not (folder / n).is_file()]
    if missing:
        raise InputError(f"{folder} is not a complete repro bundle (missing {', '.join(missing)}); write one with "
                         "`qprobe localize ... --bundle DIR` against a target that runs models")
    doc = json.loads((folder / "divergence.json").read_text())
    culprit = doc.get("culprit") or {}
    if not culprit.get("op"):
        raise InputError(f"{folder}/divergence.json names no culprit op; nothing to explain")
    loaded = []
    for name in need[1:]:
        with np.load(folder / name, allow_pickle=False) as z:
            loaded.append({k: z[k] for k in z.files})
    inputs, expected, observed = loaded
    if len(expected) != 1 or set(expected) != set(observed):
        raise InputError(f"{folder}: expected.npz and observed.npz must hold the same single output "
                         f"(found {sorted(expected)} and {sorted(observed)})")
    key = next(iter(expected))
    return str(culprit["op"]), inputs, expected[key], observed[key]
