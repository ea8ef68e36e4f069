"""The result of fix: every candidate with its measures and verdict, ranked; schema ``qprobe.fix/1``.

Verdicts (``VERDICTS``, in ranking order): ``verified`` (passed on the real target),
``predicted`` (passed on the fitted emulation, not run on the target), ``fails-target``,
``fails-emulation``, ``rejected-reference`` (the rewrite changes the model's outputs on the
reference beyond tolerance), ``not-applicable`` (the pass refused, with its reason). The
rewritten models stay in memory (``Candidate.model``) and out of the JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx_ir as ir

from qprobe import serde
from qprobe.fix.measure import EMULATION, REFERENCE, TARGET, StageResult
from qprobe.rewrite import Cost, RewriteResult

SCHEMA = "qprobe.fix/1"
VERIFIED, PREDICTED, FAILS_TARGET, FAILS_EMULATION, REJECTED, NOT_APPLICABLE = (
    "verified", "predicted", "fails-target", "fails-emulation", "rejected-reference", "not-applicable")
VERDICTS = (VERIFIED, PREDICTED, FAILS_TARGET, FAILS_EMULATION, REJECTED, NOT_APPLICABLE)
FAILING = (FAILS_TARGET, FAILS_EMULATION, REJECTED)


@dataclass(frozen=True)
class BoardNote:
    """For the workarounds tried by hand in the motivating case: does it fail as it did there, and why."""

    fails_as_on_board: bool
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"fails_as_on_board": self.fails_as_on_board, "why": self.why}


@dataclass(frozen=True)
class Candidate:
    pass_name: str
    summary: str
    motivating: bool
    int8: bool
    rewrite: RewriteResult | None  # None when read back from JSON
    stages: tuple[StageResult, ...] = ()
    verdict: str = NOT_APPLICABLE
    verdict_reason: str = ""
    board: BoardNote | None = None
    info: dict[str, Any] = field(default_factory=dict)  # the rewrite's JSON when read back
    fingerprint: str = ""  # digest of its outputs on the reference and the emulation (equal: same numbers)

    @property
    def model(self) -> ir.Model | None:
        return self.rewrite.model if self.rewrite is not None and self.rewrite.applied else None

    @property
    def cost(self) -> Cost:
        if self.rewrite is not None:
            return self.rewrite.cost
        return Cost.from_json(self.info.get("cost", {}))

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.stage == name), None)

    def decisive(self) -> StageResult | None:
        """The furthest stage this candidate reached: target, else emulation, else reference."""
        for name in (TARGET, EMULATION, REFERENCE):
            s = self.stage(name)
            if s is not None:
                return s
        return None

    def to_json(self) -> dict[str, Any]:
        rw = self.rewrite.to_json() if self.rewrite is not None else dict(self.info)
        return {
            **rw, "pass": self.pass_name, "summary": self.summary, "motivating": self.motivating, "int8": self.int8,
            "measures_by_stage": {s.stage: s.to_json() for s in self.stages}, "verdict": self.verdict,
            "verdict_reason": self.verdict_reason, "board": None if self.board is None else self.board.to_json(),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Candidate:
        board = d.get("board")
        return cls(d["pass"], d["summary"], bool(d["motivating"]), bool(d["int8"]), None,
                   tuple(StageResult.from_json(s) for s in d["measures_by_stage"].values()), d["verdict"],
                   d["verdict_reason"], None if board is None
                   else BoardNote(bool(board["fails_as_on_board"]), board["why"]),
                   {k: d[k] for k in ("applied", "reason", "changed_nodes", "added_nodes", "removed_nodes", "cost",
                                      "measures", "notes", "float_exact") if k in d}, d.get("fingerprint", ""))


@dataclass(frozen=True)
class FixResult:
    model: str
    ref: str
    target: str
    emulation: str
    node: str
    op_type: str
    ratios: tuple[float, ...]
    culprit_source: str
    envelopes: dict[str, dict[str, Any]]
    candidates: tuple[Candidate, ...]  # ranked
    original: tuple[StageResult, ...]  # the original model on the emulation (and the target, when localized)
    target_runs: dict[str, int]
    verify_on_target: int
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> Candidate | None:
        top = self.candidates[0] if self.candidates else None
        return top if top is not None and top.verdict in (VERIFIED, PREDICTED) else None

    @property
    def passed(self) -> bool:
        """A verified fix (or a predicted one when no target run was possible) within tolerance."""
        b = self.best
        if b is None:
            return False
        return b.verdict == VERIFIED or self.verify_on_target == 0

    def to_json(self) -> dict[str, Any]:
        b = self.best
        return {
            "schema": SCHEMA, "model": self.model, "ref": self.ref, "target": self.target,
            "emulation": self.emulation, "node": self.node, "op_type": self.op_type,
            "ratios": [_num(r) for r in self.ratios], "culprit_source": self.culprit_source,
            "envelopes": self.envelopes,
            "passed": self.passed, "best": None if b is None else _best(b),
            "original": [s.to_json() for s in self.original], "target_runs": self.target_runs,
            "verify_on_target": self.verify_on_target, "notes": list(self.notes),
            "candidates": [c.to_json() for c in self.candidates],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FixResult:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema={d.get('schema')!r})")
        return cls(d["model"], d["ref"], d["target"], d["emulation"], d["node"], d["op_type"],
                   tuple(float(r) for r in d["ratios"]), d["culprit_source"], d["envelopes"],
                   tuple(Candidate.from_json(c) for c in d["candidates"]),
                   tuple(StageResult.from_json(s) for s in d["original"]), dict(d["target_runs"]),
                   int(d["verify_on_target"]), tuple(d.get("notes", ())))

    def save(self, path: Path) -> None:
        serde.save(path, {**self.to_json(), "provenance": serde.provenance()})

    @classmethod
    def load(cls, path: Path) -> FixResult:
        return cls.from_json(serde.load(path, SCHEMA))


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _best(c: Candidate) -> dict[str, Any]:
    s = c.decisive()
    assert s is not None
    return {"pass": c.pass_name, "verdict": c.verdict, "stage": s.stage, "backend": s.backend,
            "final_cos": _num(s.final_cos), "final_rmse": _num(s.final_rmse), "max_abs_lsb": s.max_abs_lsb,
            "truth_rmse": s.truth_rmse, "reason": c.verdict_reason, "cost": c.cost.to_json()}
