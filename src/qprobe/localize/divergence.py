"""The Divergence: which op introduces the error, its evidence, and how it was found.

Roles of ops (``OpFinding.role``):
  ``culprit``     the first op (topological order) whose *isolated* error fails: fed with the
                  reference's inputs, the target still gets it wrong;
  ``introduces``  a later op that also fails in isolation (a defect of its own);
  ``carrier``     an op whose isolated error is fine but whose accumulated error fails: it only
                  carries error from upstream (``basis`` says whether the accumulated error was
                  measured or inferred from the op being downstream of the culprit);
  ``unconfirmed`` the first failing tensor's op when the target cannot run cut models;
  ``unclassified`` a downstream op that the run budget left without an isolated run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe import serde
from qprobe.compare.result import TensorComparison

SCHEMA = "qprobe.divergence/1"
CULPRIT, INTRODUCES, CARRIER, UNCONFIRMED, UNCLASSIFIED = (
    "culprit", "introduces", "carrier", "unconfirmed", "unclassified",
)


def _rows(rows: tuple[TensorComparison, ...]) -> list[dict[str, Any]]:
    return [r.to_json() for r in rows]


def _from_rows(d: list[dict[str, Any]]) -> tuple[TensorComparison, ...]:
    return tuple(TensorComparison.from_json(r) for r in d)


@dataclass(frozen=True)
class OpFinding:
    op: str
    op_type: str
    role: str
    outputs: tuple[str, ...]
    accumulated: tuple[TensorComparison, ...] = ()
    isolated: tuple[TensorComparison, ...] = ()
    basis: str = ""
    group: tuple[str, ...] = ()  # a fused group: its member ops (``op`` is their names joined by '+')

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op, "op_type": self.op_type, "role": self.role, "outputs": list(self.outputs),
            "accumulated": _rows(self.accumulated), "isolated": _rows(self.isolated), "basis": self.basis,
            "group": list(self.group),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OpFinding:
        return cls(
            d["op"], d["op_type"], d["role"], tuple(d["outputs"]),
            _from_rows(d["accumulated"]), _from_rows(d["isolated"]), d.get("basis", ""), tuple(d.get("group", ())),
        )


@dataclass(frozen=True)
class RunRecord:
    """One target run: what it ran and which tensors failed in it."""

    kind: str  # "model" or "cut"
    purpose: str
    probes: tuple[str, ...] = ()
    isolate: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ()
    failing: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "purpose": self.purpose, "probes": list(self.probes),
                "isolate": list(self.isolate), "prefix": list(self.prefix), "failing": list(self.failing),
                "groups": [list(g) for g in self.groups]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunRecord:
        return cls(d["kind"], d["purpose"], tuple(d["probes"]), tuple(d["isolate"]), tuple(d["prefix"]),
                   tuple(d["failing"]), tuple(tuple(g) for g in d.get("groups", ())))


@dataclass(frozen=True)
class Divergence:
    """Result of ``localize``; round-trips to JSON (``save``/``load``)."""

    strategy: str
    requested: str
    reason: str
    found: bool
    culprit: OpFinding | None
    culprit_inputs: tuple[TensorComparison, ...]
    later: tuple[OpFinding, ...]
    final_outputs: tuple[TensorComparison, ...]
    tensors: tuple[TensorComparison, ...]
    isolated: tuple[TensorComparison, ...]
    runs: tuple[RunRecord, ...]
    budget: int | None = None
    notes: tuple[str, ...] = ()
    model: str = ""
    ref: str = ""
    target: str = ""
    num_samples: int = 0
    inputs: str = ""
    reference_runs: int = 0
    runs_cached: int = 0  # target runs a command target took from its cache (part of target_runs)
    extra: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def target_runs(self) -> int:
        return len(self.runs)

    @property
    def runs_executed(self) -> int:
        """Target runs that ran (the others came from a command target's cache)."""
        return self.target_runs - self.runs_cached

    @property
    def within_budget(self) -> bool:
        return self.budget is None or self.target_runs <= self.budget

    def carriers(self) -> tuple[str, ...]:
        return tuple(f.op for f in self.later if f.role == CARRIER)

    def introducers(self) -> tuple[str, ...]:
        return tuple(f.op for f in self.later if f.role == INTRODUCES)

    def verdict(self) -> str:
        """One line: the conclusion."""
        if self.culprit is None:
            outs = [r.name for r in self.final_outputs if r.failed]
            failing = [r.name for r in self.tensors if r.failed]
            if outs:
                return f"final outputs {', '.join(outs)} fail, but no single op introduces the error in isolation"
            if failing:
                return (f"{len(failing)} tensor(s) fail in the whole model ({', '.join(failing[:3])}"
                        f"{', ...' if len(failing) > 3 else ''}), the final outputs pass, and no op introduces "
                        "an error in isolation")
            return "no divergence: every compared tensor is within tolerance"
        c = self.culprit
        rows = c.isolated or c.accumulated
        why = "; ".join(r.reason for r in rows if r.failed) or "fails"
        if c.group:
            return (f"the group {{{', '.join(c.group)}}} ({c.op_type}) diverges in isolation; each op alone is "
                    f"within tolerance: {why}")
        kind = "introduces the error" if c.role == CULPRIT else "is the first failing op (not confirmed in isolation)"
        return f"{c.op} ({c.op_type}) {kind}: {why}"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": self.model, "ref": self.ref, "target": self.target,
            "num_samples": self.num_samples, "inputs": self.inputs,
            "strategy": self.strategy, "requested": self.requested, "reason": self.reason,
            "found": self.found, "verdict": self.verdict(),
            "culprit": None if self.culprit is None else self.culprit.to_json(),
            "culprit_inputs": _rows(self.culprit_inputs),
            "later": [f.to_json() for f in self.later],
            "final_outputs": _rows(self.final_outputs),
            "tensors": _rows(self.tensors), "isolated": _rows(self.isolated),
            "target_runs": self.target_runs, "target_runs_executed": self.runs_executed,
            "target_runs_cached": self.runs_cached, "reference_runs": self.reference_runs, "budget": self.budget,
            "runs": [r.to_json() for r in self.runs],
            "notes": list(self.notes), "extra": self.extra,
            "policy": self.policy, "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Divergence:
        serde.check_schema(d, SCHEMA, "divergence document")
        return cls(
            strategy=d["strategy"], requested=d["requested"], reason=d["reason"], found=bool(d["found"]),
            culprit=None if d["culprit"] is None else OpFinding.from_json(d["culprit"]),
            culprit_inputs=_from_rows(d["culprit_inputs"]),
            later=tuple(OpFinding.from_json(f) for f in d["later"]),
            final_outputs=_from_rows(d["final_outputs"]),
            tensors=_from_rows(d["tensors"]), isolated=_from_rows(d["isolated"]),
            runs=tuple(RunRecord.from_json(r) for r in d["runs"]),
            budget=d["budget"], notes=tuple(d["notes"]),
            model=d["model"], ref=d["ref"], target=d["target"], num_samples=int(d["num_samples"]),
            inputs=d["inputs"], reference_runs=int(d["reference_runs"]),
            runs_cached=int(d.get("target_runs_cached", 0)), extra=dict(d.get("extra") or {}),
            policy=dict(d.get("policy") or {}), provenance=dict(d.get("provenance") or {}),
        )

    def save(self, path: Path) -> None:
        serde.save(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Divergence:
        return cls.from_json(serde.load(path, SCHEMA))
