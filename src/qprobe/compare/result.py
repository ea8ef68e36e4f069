"""The Comparison: one row per tensor, in topological order, that round-trips to JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qprobe.compare.policy import FAIL
from qprobe.fileio import atomic_write_text
from qprobe.metrics import LsbMetrics, StMetrics
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
class ProbeEffect:
    """Did exposing probes change a backend's final outputs? (DESIGN rule 7)"""

    backend: str
    checked: bool
    changed_outputs: tuple[str, ...] = ()
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "checked": self.checked,
            "changed_outputs": list(self.changed_outputs),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProbeEffect:
        return cls(d["backend"], bool(d["checked"]), tuple(d["changed_outputs"]), d.get("detail", ""))


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

    @property
    def first_failing(self) -> TensorComparison | None:
        return next((r for r in self.rows if r.failed), None)

    @property
    def passed(self) -> bool:
        return self.first_failing is None

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
            "probe_effects": [p.to_json() for p in self.probe_effects],
            "session_info": self.session_info or {},
            "rows": [r.to_json() for r in self.rows],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Comparison:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document (schema={d.get('schema')!r})")
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
        )

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: Path) -> Comparison:
        return cls.from_json(json.loads(Path(path).read_text()))
