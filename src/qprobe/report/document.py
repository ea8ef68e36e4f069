"""The report document (schema ``qprobe.report/1``): the one source every renderer reads.

A ``Report`` embeds the stages' own documents as they are (``comparison``, ``divergence``,
``explanation``, ``fix``: each its own schema, each may be null) and the *views* the
renderers need, computed once by ``report.build`` (renderers compute nothing):

``verdict``       ``status`` (pass | fail | fixed), ``line`` (the verdict in one line), ``culprit``, ``fix``
``series``        every tensor along the topological order: accumulated and local error, culprit marked,
                  with the chart geometry (``report.series``)
``neighbourhood`` the culprit's producers and consumers as a small graph with scales, zero points and
                  operand/output ratios (``report.neighbourhood``)
``explanation``   hypothesis rows, model-free fit rows, the envelope chart (``report.explanation_view``)
``fix``           every candidate's row and the motivating case's workarounds (``report.fix_view``)
``checklist``     the rule-out checklist (``report.checklist``)
``reproduce``     the commands that reproduce each step
``overlay``       per-node values for Model Explorer (``report.overlay``)

``stages`` records what each stage did (status, target runs, seconds, note) and ``files`` the
evidence files written beside report.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe import serde

SCHEMA = "qprobe.report/1"
DOCUMENTS = ("comparison", "divergence", "explanation", "fix")


@dataclass(frozen=True)
class Report:
    kind: str  # "compare" | "localize" | "diagnose"
    title: str
    model: str
    ref: str
    target: str
    verdict: dict[str, Any]
    views: dict[str, Any]
    comparison: dict[str, Any] | None = None
    divergence: dict[str, Any] | None = None
    explanation: dict[str, Any] | None = None
    fix: dict[str, Any] | None = None
    stages: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    files: tuple[dict[str, str], ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    def view(self, name: str) -> Any:
        return self.views.get(name)

    def to_json(self) -> dict[str, Any]:
        return serde.plain({
            "schema": SCHEMA, "kind": self.kind, "title": self.title, "model": self.model, "ref": self.ref,
            "target": self.target, "verdict": self.verdict, "stages": list(self.stages), "notes": list(self.notes),
            "files": list(self.files), "views": self.views,
            "documents": {k: getattr(self, k) for k in DOCUMENTS},
            "provenance": self.provenance,
        })

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Report:
        serde.check_schema(d, SCHEMA, "report document")
        docs = d.get("documents") or {}
        return cls(
            kind=d["kind"], title=d["title"], model=d["model"], ref=d["ref"], target=d["target"],
            verdict=dict(d["verdict"]), views=dict(d["views"]), stages=tuple(d.get("stages", ())),
            notes=tuple(d.get("notes", ())), files=tuple(d.get("files", ())),
            provenance=dict(d.get("provenance") or {}), **{k: docs.get(k) for k in DOCUMENTS},
        )

    def save(self, path: Path) -> None:
        serde.save(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Report:
        return cls.from_json(serde.load(path, SCHEMA))
