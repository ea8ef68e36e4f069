"""The Comparison: one row per tensor, in topological order, that round-trips to JSON.

The verdict is about the model as deployed (DESIGN rule 7). When unprobed runs were made,
``deployed`` holds the final outputs of those runs; when probing changed what a backend
computes (``ProbeEffect.changed``), the probed rows cannot be trusted and the verdict
(``passed``, ``first_failing``, the CLI's exit code) rests on the deployed rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe import serde
from qprobe.compare.policy import FAIL
from qprobe.metrics import LsbMetrics, StMetrics
from qprobe.metrics.st import json_float
from qprobe.tensors import ProbePlan, QuantParams

SCHEMA = "qprobe.comparison/1"


@dataclass(frozen=True)
class TensorComparison:
    name: str
    producer: str
    op_type: str
    quant: QuantParams | None
    st: StMetrics
    lsb: LsbMetrics | None
    verdict: str
    reason: str

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "producer": self.producer,
            "op_type": self.op_type,
            "quant": None if self.quant is None else self.quant.to_json(),
            "st": self.st.to_json(),
            "lsb": None if self.lsb is None else self.lsb.to_json(),
            "verdict": self.verdict,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TensorComparison:
        return cls(
            name=d["name"],
            producer=d["producer"],
            op_type=d["op_type"],
            quant=None if d["quant"] is None else QuantParams.from_json(d["quant"]),
            st=StMetrics.from_json(d["st"]),
            lsb=None if d["lsb"] is None else LsbMetrics.from_json(d["lsb"]),
            verdict=d["verdict"],
            reason=d["reason"],
        )


@dataclass(frozen=True)
class OutputEffect:
    """How much exposing tensors changed one final output of one backend (unprobed vs probed)."""

    name: str
    identical: bool
    cos: float
    max_abs_lsb: float | None = None
    exact_share: float | None = None

    def to_json(self) -> dict[str, Any]:
        return serde.plain(vars(self))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OutputEffect:
        opt = {k: None if d.get(k) is None else float(d[k]) for k in ("max_abs_lsb", "exact_share")}
        return cls(d["name"], bool(d["identical"]), json_float(d["cos"]), **opt)


@dataclass(frozen=True)
class ProbeEffect:
    """Did exposing probes change a backend's final outputs? (DESIGN rule 7)"""

    backend: str
    checked: bool
    changed_outputs: tuple[str, ...] = ()
    detail: str = ""
    outputs: tuple[OutputEffect, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changed_outputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "checked": self.checked,
            "changed_outputs": list(self.changed_outputs),
            "detail": self.detail,
            "outputs": [o.to_json() for o in self.outputs],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProbeEffect:
        return cls(d["backend"], bool(d["checked"]), tuple(d["changed_outputs"]), d.get("detail", ""),
                   tuple(OutputEffect.from_json(o) for o in d.get("outputs", ())))


@dataclass(frozen=True)
class Comparison:
    model: str
    ref: str
    target: str
    num_samples: int
    inputs: str
    plan: ProbePlan
    rows: tuple[TensorComparison, ...]
    probe_effects: tuple[ProbeEffect, ...] = ()
    session_info: dict[str, dict[str, str]] | None = None
    deployed: tuple[TensorComparison, ...] = ()
    policy: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def trusted(self) -> bool:
        """False when probing changed a backend's final outputs: the probed rows are not what
        the deployed model computes."""
        return not any(e.changed for e in self.probe_effects)

    @property
    def verdict_rows(self) -> tuple[TensorComparison, ...]:
        """The rows the verdict rests on: every row, or only the deployed outputs when probing
        changed what a backend computes."""
        return self.rows if self.trusted or not self.deployed else self.deployed

    @property
    def first_failing(self) -> TensorComparison | None:
        return next((r for r in self.verdict_rows if r.failed), None)

    @property
    def passed(self) -> bool:
        return self.first_failing is None and not any(r.failed for r in self.deployed)

    def row(self, name: str) -> TensorComparison:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        ff = self.first_failing
        return {
            "schema": SCHEMA,
            "model": self.model,
            "ref": self.ref,
            "target": self.target,
            "num_samples": self.num_samples,
            "inputs": self.inputs,
            "plan": self.plan.to_json(),
            "first_failing": None if ff is None else ff.name,
            "passed": self.passed,
            "trusted": self.trusted,
            "probe_effects": [p.to_json() for p in self.probe_effects],
            "session_info": self.session_info or {},
            "policy": self.policy,
            "deployed": [r.to_json() for r in self.deployed],
            "rows": [r.to_json() for r in self.rows],
            "notes": list(self.notes),
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Comparison:
        serde.check_schema(d, SCHEMA, "comparison document")
        return cls(
            model=d["model"],
            ref=d["ref"],
            target=d["target"],
            num_samples=int(d["num_samples"]),
            inputs=d["inputs"],
            plan=ProbePlan.from_json(d["plan"]),
            rows=tuple(TensorComparison.from_json(r) for r in d["rows"]),
            probe_effects=tuple(ProbeEffect.from_json(p) for p in d["probe_effects"]),
            session_info=d.get("session_info") or {},
            deployed=tuple(TensorComparison.from_json(r) for r in d.get("deployed", ())),
            policy=dict(d.get("policy") or {}),
            provenance=dict(d.get("provenance") or {}),
            notes=tuple(d.get("notes", ())),
        )

    def save(self, path: Path) -> None:
        serde.save(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Comparison:
        return cls.from_json(serde.load(path, SCHEMA))
