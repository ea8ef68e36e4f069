"""``diagnose``: compare -> localize -> explain -> fix in one call, and the report folder of it all.

Each stage runs only when the one before found something (a passing model stops after
compare), and reports to a ``StageProgress`` as it goes (its target runs are counted live:
``Backend.open`` calls on the target). explain and fix are reached through one small function
each (``run_explain``, ``run_fix``), which return None and a note when their package is not
installed, so diagnose works with whatever of the pipeline exists. Everything is written into
a staging folder beside ``out_dir`` that replaces it at the end (``report.write.staged``):
interrupted, diagnose leaves no partial folder, and a rerun resumes from the command
targets' on-disk run cache.

The folder: report.json, report.html, report.md, model_explorer/*.json, the stages' own
documents (compare.json, divergence.json, explanation.json, fix.json), fitted.toml when
explain fitted a profile, fixed.onnx when fix found one, bundle/ (the culprit's repro
bundle), and model.onnx when qprobe had to name the model's nodes (the overlays' node ids).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import onnx_ir as ir

from qprobe import serde
from qprobe.backends.base import Backend
from qprobe.compare import Comparison, TolerancePolicy, compare_backends
from qprobe.errors import InputError, QprobeError
from qprobe.fileio import atomic_write_text
from qprobe.localize import Localization, localize
from qprobe.localize.culprit import culprit_cut
from qprobe.localize.runner import CountedBackend
from qprobe.model.inputs import InputSet
from qprobe.model.loader import save_model
from qprobe.model.quant import build_quant_index
from qprobe.report.build import Invocation, build_report
from qprobe.report.bundle import Repro, write_bundle
from qprobe.report.document import Report
from qprobe.report.write import render_files, staged

DONE, SKIPPED, UNAVAILABLE, FAILED = "done", "skipped", "unavailable", "failed"
STAGES = ("compare", "localize", "explain", "fix")


@dataclass
class StageRecord:
    name: str
    status: str = ""
    note: str = ""
    target_runs: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "note": self.note, "target_runs": self.target_runs,
                "seconds": round(self.seconds, 3)}


class StageProgress(Protocol):
    """What a live display is told: a stage starts (with a way to read its target runs so far),
    says what it is doing, and ends."""

    def stage_started(self, name: str, runs: Callable[[], int]) -> None: ...

    def stage_message(self, name: str, message: str) -> None: ...

    def stage_finished(self, record: StageRecord) -> None: ...


@dataclass(frozen=True)
class DiagnoseRequest:
    model: ir.Model
    model_name: str
    ref: Backend
    target: Backend
    inputs: InputSet
    out_dir: Path
    invocation: Invocation
    model_path: Path | None = None
    float_model: Path | None = None
    calibration: Path | None = None
    truth: Path | None = None
    policy: TolerancePolicy | None = None
    batch_size: int = 64
    force: bool = False  # replace out_dir even when it is not an earlier report


@dataclass
class DiagnoseResult:
    report: Report
    out_dir: Path
    files: list[Path]
    fixed: Path | None


@dataclass(frozen=True)
class Outcome:
    """What a stage returns: its result (None: nothing), a note for the report, and its status when it
    is not plainly done or skipped (``UNAVAILABLE``: its package is not installed)."""

    value: Any
    note: str = ""
    status: str = ""


@dataclass
class _Run:
    req: DiagnoseRequest
    target: CountedBackend
    progress: StageProgress | None
    records: list[StageRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def say(self, name: str) -> Callable[[str], None]:
        return lambda msg: self.progress.stage_message(name, msg) if self.progress else None

    def stage(self, name: str, fn: Callable[[], Outcome]) -> Any:
        """Run one stage: time it, count its target runs, record its status and note."""
        before, t0 = self.target.opened, time.monotonic()
        if self.progress:
            self.progress.stage_started(name, lambda: self.target.opened - before)
        out = fn()
        status = out.status or (DONE if out.value is not None else SKIPPED)
        rec = StageRecord(name, status, out.note, self.target.opened - before, time.monotonic() - t0)
        return self._finish(rec, out.value)

    def skip(self, name: str, note: str) -> None:
        self._finish(StageRecord(name, SKIPPED, note, None, 0.0), None)

    def _finish(self, rec: StageRecord, value: Any) -> Any:
        self.records.append(rec)
        if self.progress:
            self.progress.stage_finished(rec)
        return value


# -- explain and fix: one small function each, None with a note while their package is missing ---------


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def run_explain(run: _Run, node: str) -> Outcome:
    """``qprobe.explain.explain`` on the culprit (characterizing when the target runs models)."""
    mod = _module("qprobe.explain")
    if mod is None:
        return Outcome(None, "qprobe.explain is not installed in this qprobe: no explanation", UNAVAILABLE)
    r = run.req
    try:
        e = mod.explain(r.model, r.ref, run.target, r.inputs, node=node,
                        characterize=run.target.capabilities().accepts_models, policy=r.policy,
                        progress=run.say("explain"), batch_size=r.batch_size, model_name=r.model_name)
    except QprobeError as err:
        return Outcome(None, f"explain stopped: {err}", FAILED)
    why = next((n for n in reversed(e.notes) if n.startswith("unexplained")), "unexplained")
    return Outcome(e, "" if e.explained else why)


def _emulation(run: _Run, fix_mod: Any, node: str, explanation: Any | None) -> tuple[Any | None, Any | None, str]:
    """(emulation, envelope, note): explain's fitted profile and envelope; without one, a target that is
    qprobe's engine emulates itself (bit for bit, by construction); else nothing."""
    if explanation is not None and explanation.explained and explanation.profile:
        env_mod = _module("qprobe.fix.envelope")
        env = (None if explanation.envelope is None or env_mod is None
               else env_mod.from_explanation(explanation.envelope))
        return fix_mod.emulation_of(explanation.profile, f"explain:{node}"), env, ""
    why = "explain is not installed" if explanation is None else "explain did not explain the culprit"
    if run.req.target.spec.startswith("engine:"):
        return run.req.target, None, f"no fitted profile ({why}): the target is qprobe's engine, so it emulates itself"
    return None, None, f"no fitted profile of the target ({why}): fix cannot predict candidates"


def run_fix(run: _Run, node: str, explanation: Any | None) -> Outcome:
    """``qprobe.fix.fix`` on the culprit, emulating the target with explain's fitted profile and envelope."""
    mod = _module("qprobe.fix")
    if mod is None:
        return Outcome(None, "qprobe.fix is not installed in this qprobe: no fix search", UNAVAILABLE)
    emulation, envelope, note = _emulation(run, mod, node, explanation)
    if emulation is None:
        return Outcome(None, note)
    r = run.req
    try:
        result = mod.fix(r.model, r.ref, run.target, r.inputs, node=node, emulation=emulation, envelope=envelope,
                         float_model=r.float_model, calibration=r.calibration, truth=_truth(r.truth), policy=r.policy,
                         batch_size=r.batch_size, model_name=r.model_name, progress=run.say("fix"))
    except QprobeError as err:
        return Outcome(None, f"fix stopped: {err}", FAILED)
    if result.best is None:
        note = "; ".join(filter(None, [note, "no candidate brings the final outputs within tolerance"]))
    return Outcome(result, note)


def _truth(path: Path | None) -> dict[str, np.ndarray] | None:
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(f"--truth {str(path)!r} is not a readable .npz ({e}); save one array per output") from e


# -- compare and localize -------------------------------------------------------------------------------


def _compare(run: _Run) -> Outcome:
    r, say = run.req, run.say("compare")
    cmp = compare_backends(r.model, r.ref, run.target, r.inputs, policy=r.policy, batch_size=r.batch_size,
                           model_name=r.model_name, progress=lambda done, total: say(f"samples {done}/{total}"))
    first = cmp.first_failing
    return Outcome(cmp, "every tensor within tolerance" if first is None else f"first failing: {first.name}")


def _localize(run: _Run) -> Outcome:
    r = run.req
    run.say("localize")("each target run: prepare the model, run every sample")
    loc = localize(r.model, r.ref, run.target, r.inputs, policy=r.policy, batch_size=r.batch_size,
                   model_name=r.model_name)
    return Outcome(loc, loc.divergence.verdict())


def _stages(run: _Run) -> tuple[Comparison, Localization | None, Any, Any]:
    cmp = run.stage("compare", lambda: _compare(run))
    loc = expl = fixed = None
    if cmp.passed:
        for name in STAGES[1:]:
            run.skip(name, "nothing fails: every compared tensor is within tolerance")
        return cmp, None, None, None
    loc = run.stage("localize", lambda: _localize(run))
    culprit = loc.divergence.culprit
    if culprit is None:
        for name in STAGES[2:]:
            run.skip(name, f"no op to explain: {loc.divergence.verdict()}")
        return cmp, loc, None, None
    expl = run.stage("explain", lambda: run_explain(run, culprit.op))
    fixed = run.stage("fix", lambda: run_fix(run, culprit.op, expl))
    return cmp, loc, expl, fixed


# -- the folder ---------------------------------------------------------------------------------------


def _model_file(req: DiagnoseRequest, stage: Path) -> tuple[str | None, list[dict[str, str]]]:
    """The model whose node names the overlays use: the original file when qprobe kept every name, else a
    named copy in the folder (Model Explorer's ONNX adapter shows the names a file holds)."""
    if req.model_path is not None:
        proto = onnx.load(str(req.model_path), load_external_data=False)
        if [n.name for n in proto.graph.node] == [n.name for n in req.model.graph]:
            return str(Path(req.model_path).resolve()), []
    save_model(req.model, stage / "model.onnx")
    return "model.onnx", [{"path": "model.onnx", "what": "the model with qprobe's node names (open it in Model "
                                                       "Explorer with the overlays)"}]


def _bundle(req: DiagnoseRequest, loc: Localization | None, stage: Path) -> list[dict[str, str]]:
    div = None if loc is None else loc.divergence
    if div is None or div.culprit is None or div.culprit.op not in loc.isolated:  # type: ignore[union-attr]
        return []
    assert loc is not None
    write_bundle(stage / "bundle", Repro(
        title=div.verdict(), cut=culprit_cut(req.model, div, loc.isolated), ref=req.invocation.ref,
        target=req.invocation.target, source=req.model_name, command=serde.command_line(),
        target_options=req.invocation.target_options, divergence=div,
    ))
    return [{"path": "bundle/", "what": "the culprit's repro bundle: its one-op cut, inputs, expected and observed "
                                        "outputs, repro.py (plain onnxruntime), README.md"}]


def _documents(stage: Path, docs: Mapping[str, dict[str, Any] | None], expl: Any, fixed: Any) -> list[dict[str, str]]:
    files = []
    what = {"compare": "the comparison (qprobe.comparison/1)", "divergence": "the localization (qprobe.divergence/1)",
            "explanation": "the explanation (qprobe.explanation/1)", "fix": "every fix candidate (qprobe.fix/1)"}
    for name, doc in docs.items():
        if doc is not None:
            serde.save(stage / f"{name}.json", doc)
            files.append({"path": f"{name}.json", "what": what[name]})
    if expl is not None and expl.profile:
        atomic_write_text(stage / "fitted.toml", expl.profile)
        files.append({"path": "fitted.toml", "what": "the fitted engine profile: --target engine:fitted.toml"})
    if fixed is not None and fixed.best is not None and fixed.best.model is not None:
        save_model(fixed.best.model, stage / "fixed.onnx")
        files.append({"path": "fixed.onnx", "what": f"the fixed model ({fixed.best.pass_name}, {fixed.best.verdict})"})
    return files


def diagnose(req: DiagnoseRequest, progress: StageProgress | None = None) -> DiagnoseResult:
    """Run every stage and write the report folder ``req.out_dir`` (see the module docstring)."""
    run = _Run(req, CountedBackend(req.target), progress)
    with staged(req.out_dir, force=req.force) as stage:
        cmp, loc, expl, fixed = _stages(run)
        docs = {"compare": cmp.to_json(), "divergence": None if loc is None else loc.divergence.to_json(),
                "explanation": None if expl is None else expl.to_json(),
                "fix": None if fixed is None else fixed.to_json()}
        model_file, files = _model_file(req, stage)
        files += _documents(stage, docs, expl, fixed) + _bundle(req, loc, stage)
        report = build_report(
            "diagnose", req.model, req.model_name, comparison=docs["compare"], divergence=docs["divergence"],
            explanation=docs["explanation"], fix=docs["fix"], invocation=req.invocation,
            stages=[r.to_json() for r in run.records], notes=run.notes, files=_with_renderings(files),
            index=build_quant_index(req.model), model_file=model_file,
        )
        written = render_files(report, stage)
        names = [p.relative_to(stage) for p in written]
    out = Path(req.out_dir)
    fixed_path = out / "fixed.onnx" if (out / "fixed.onnx").exists() else None
    return DiagnoseResult(report, out, [out / n for n in names], fixed_path)


def _with_renderings(files: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"path": "report.json", "what": "every number of this report, and the stages' documents"},
            {"path": "report.html", "what": "this page"},
            {"path": "report.md", "what": "the write-up for a forum post"},
            {"path": "model_explorer/", "what": "node-data overlays for Google's Model Explorer (one per metric)"},
            *files]
