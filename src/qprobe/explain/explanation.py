"""The result of ``explain``: ``Explanation`` (schema ``qprobe.explanation/1``) and its ``Hypothesis``.

A hypothesis is a base profile and the knobs that differ from that base for the op's
class: ``get_profile(base)`` numerics of the class with ``knobs`` applied is exactly what it
computes. Scores are on the culprit's observations (and, after characterization, the
probe subgraphs too): ``exact_match`` share, ``mean_delta_lsb`` (predicted - observed),
``mean_abs_delta_lsb``, ``max_abs_lsb``; ``model_failures`` counts the tensors a profile with
this hypothesis fails on the whole model (None: not checked). JSON goes through
``qprobe.serde`` (strict: non-finite numbers become null; the schema is checked on load).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe.backends.engine import Numerics
from qprobe.explain.causes import Cause
from qprobe.explain.compose import base_profile
from qprobe.explain.envelope import Envelope
from qprobe.explain.fitted import TensorFit
from qprobe.explain.observe import InputCheck
from qprobe.explain.pattern import Pattern
from qprobe.serde import check_schema, load, plain, save

SCHEMA = "qprobe.explanation/1"


@dataclass(frozen=True)
class Hypothesis:
    op_class: str
    base: str
    knobs: dict[str, str | int]
    exact_match: float
    mean_delta_lsb: float
    mean_abs_delta_lsb: float
    max_abs_lsb: int
    family: str = ""
    equivalents: int = 1
    model_failures: int | None = None
    failing_tensors: tuple[str, ...] = ()

    def numerics(self, op_type: str = "") -> Numerics:
        return base_profile(self.base).numerics_for(self.op_class, op_type).with_knobs(self.knobs)

    def label(self) -> str:
        changes = ", ".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.base} + {changes}" if changes else f"{self.base} (as is)"

    def to_json(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["failing_tensors"] = list(self.failing_tensors)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Hypothesis:
        return cls(d["op_class"], d["base"], dict(d["knobs"]), float(d["exact_match"]), float(d["mean_delta_lsb"]),
                   float(d["mean_abs_delta_lsb"]), int(d["max_abs_lsb"]), d.get("family", ""),
                   int(d.get("equivalents", 1)), d.get("model_failures"), tuple(d.get("failing_tensors", ())))


@dataclass(frozen=True)
class Explanation:
    explained: bool
    node: str
    op_type: str
    op_class: str
    best: Hypothesis | None
    hypotheses: tuple[Hypothesis, ...]
    linear_fit: dict[str, Any]
    sentence: str
    envelope: Envelope | None
    profile: str | None  # TOML text of the fitted profile
    target_runs: int
    notes: tuple[str, ...] = ()
    pattern: Pattern | None = None
    causes: tuple[Cause, ...] = ()
    checklist: tuple[str, ...] = ()
    profile_base: str | None = None
    profile_check: tuple[TensorFit, ...] = ()
    input_checks: tuple[InputCheck, ...] = ()
    characterization_runs: int = 0
    observations: str = ""
    search: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    ref: str = ""
    target: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    envelopes: tuple[Envelope, ...] = ()  # every characterized parameter; ``envelope`` is the first
    target_runs_cached: int = 0  # of target_runs: served by a command target's cache

    @property
    def profile_passes(self) -> bool:
        return bool(self.profile_check) and not any(r.failed for r in self.profile_check)

    def to_json(self) -> dict[str, Any]:
        return plain({
            "schema": SCHEMA, "explained": self.explained, "node": self.node, "op_type": self.op_type,
            "op_class": self.op_class, "best": None if self.best is None else self.best.to_json(),
            "hypotheses": [h.to_json() for h in self.hypotheses], "linear_fit": self.linear_fit,
            "sentence": self.sentence, "envelope": None if self.envelope is None else self.envelope.to_json(),
            "profile": self.profile, "profile_base": self.profile_base,
            "profile_check": [r.to_json() for r in self.profile_check], "profile_passes": self.profile_passes,
            "target_runs": self.target_runs, "target_runs_cached": self.target_runs_cached,
            "characterization_runs": self.characterization_runs,
            "notes": list(self.notes), "pattern": None if self.pattern is None else self.pattern.to_json(),
            "causes": [c.to_json() for c in self.causes], "checklist": list(self.checklist),
            "input_checks": [c.to_json() for c in self.input_checks], "observations": self.observations,
            "search": self.search, "model": self.model, "ref": self.ref, "target": self.target,
            "provenance": self.provenance, "envelopes": [e.to_json() for e in self.envelopes],
        })

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Explanation:
        check_schema(dict(d), SCHEMA, "the explanation document")
        return cls(
            explained=bool(d["explained"]), node=d["node"], op_type=d["op_type"], op_class=d["op_class"],
            best=None if d["best"] is None else Hypothesis.from_json(d["best"]),
            hypotheses=tuple(Hypothesis.from_json(h) for h in d["hypotheses"]), linear_fit=dict(d["linear_fit"]),
            sentence=d["sentence"], envelope=None if d["envelope"] is None else Envelope.from_json(d["envelope"]),
            profile=d["profile"], target_runs=int(d["target_runs"]),
            target_runs_cached=int(d.get("target_runs_cached", 0)), notes=tuple(d["notes"]),
            pattern=None if d.get("pattern") is None else Pattern.from_json(d["pattern"]),
            causes=tuple(Cause.from_json(c) for c in d.get("causes", ())), checklist=tuple(d.get("checklist", ())),
            profile_base=d.get("profile_base"),
            profile_check=tuple(TensorFit.from_json(r) for r in d.get("profile_check", ())),
            input_checks=tuple(InputCheck.from_json(c) for c in d.get("input_checks", ())),
            characterization_runs=int(d.get("characterization_runs", 0)), observations=d.get("observations", ""),
            search=dict(d.get("search", {})), model=d.get("model", ""), ref=d.get("ref", ""),
            target=d.get("target", ""), provenance=dict(d.get("provenance") or {}),
            envelopes=tuple(Envelope.from_json(e) for e in d.get("envelopes", ())),
        )

    def save(self, path: Path) -> None:
        save(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Explanation:
        return cls.from_json(load(path, SCHEMA))
