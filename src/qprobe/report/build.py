"""Assemble a ``Report`` from the stages' results: the documents as they are, plus every derived view.

``build_report`` takes the model (for the op graph, the quantization view and the node ids of
the Model Explorer overlay) and the stages' JSON documents (each may be None), and computes
the views the renderers show (see ``report.document``). Nothing here runs a backend.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import onnx_ir as ir

from qprobe import serde
from qprobe.localize.graph import build_op_graph
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.report.cells import fmt, pct
from qprobe.report.checklist import build_checklist
from qprobe.report.document import Report
from qprobe.report.explanation_view import build_explanation_view, hypothesis_label
from qprobe.report.fix_view import build_fix_view
from qprobe.report.neighbourhood import build_neighbourhood, focus_of
from qprobe.report.overlay import build_overlay
from qprobe.report.series import build_series

Doc = Mapping[str, Any] | None


@dataclass(frozen=True)
class Invocation:
    """How the run was asked for, as CLI arguments, so the report can print commands that redo each step."""

    model: str  # "--example tcn" or a model path
    ref: str
    target: str
    target_options: tuple[str, ...] = ()
    inputs: str = ""  # "--inputs F", "--random N --seed S" or ""
    out_dir: str = "DIR"

    def backends(self) -> str:
        opts = "".join(f" --target-opt {shlex.quote(o)}" for o in self.target_options)
        return f"--ref {shlex.quote(self.ref)} --target {shlex.quote(self.target)}{opts}"

    def base(self, command: str, model: str | None = None) -> str:
        inputs = f" {self.inputs}" if self.inputs else ""
        return f"qprobe {command} {model or self.model} {self.backends()}{inputs}"


def model_facts(model: ir.Model, index: QuantIndex) -> dict[str, Any]:
    """The op graph (localize's units), each quantized tensor's parameters and each op's scale ratios."""
    graph = build_op_graph(model, index)
    ops = {o.name: {"name": o.name, "op_type": o.op_type, "inputs": list(o.inputs), "outputs": list(o.outputs)}
           for o in graph.ops}
    quant = {t: {"scale": q.scale[0] if q.per_tensor else None, "zero_point": q.zero_point[0] if q.per_tensor else None,
                 "dtype": q.dtype, "per_axis": 0 if q.per_tensor else len(q.scale)} for t, q in index.tensors.items()}
    views = {o.name: o for o in index.ops}
    ratios = {n: r for n in ops if n in views and (r := index.scale_ratios(views[n]))}
    op_inputs = {t: list(o.inputs) for o in graph.ops for t in o.outputs}
    return {"ops": ops, "quant": quant, "ratios": ratios, "op_inputs": op_inputs,
            "graph_inputs": list(graph.graph_inputs)}


def _culprit_line(div: Mapping[str, Any]) -> str:
    return str(div.get("verdict", ""))


def verdict(comparison: Doc, divergence: Doc, expl: Doc, fix: Doc) -> dict[str, Any]:
    """The verdict in one line, and its parts (status pass | fail | fixed)."""
    parts: list[str] = []
    culprit = ((divergence or {}).get("culprit") or {}).get("op")
    failed = bool(culprit) or (comparison is not None and not comparison.get("passed", True)) or bool(
        divergence and any(r["verdict"] == "fail" for r in divergence.get("final_outputs", ())))
    if divergence is not None and (culprit or failed):
        parts.append(_culprit_line(divergence))
    elif comparison is not None:
        parts.append(_comparison_line(comparison))
    elif divergence is not None:
        parts.append(_culprit_line(divergence))
    best = (expl or {}).get("best")
    if expl is not None:
        share = f"{100 * float(best['exact_match']):.2f}%" if best else "no hypothesis"
        parts.append(f"explained: {hypothesis_label(best)} reproduces {share} of its codes"
                     if expl.get("explained") and best else f"unexplained: best hypothesis reproduces {share}")
    fb = (fix or {}).get("best")
    if fix is not None:
        parts.append(f"fix: {fb['pass']} ({fb['verdict']} on {fb['backend']}, final cos "
                     f"{fmt(fb.get('final_cos'), '.5f')})"
                     if fb else "fix: no candidate brings the final outputs within tolerance")
    status = "fixed" if fb and fix and fix.get("passed") else ("fail" if failed else "pass")
    return {"status": status, "line": "; ".join(p for p in parts if p), "culprit": culprit,
            "hypothesis": None if not best else hypothesis_label(best), "fix": None if not fb else fb["pass"]}


def _comparison_line(c: Mapping[str, Any]) -> str:
    rows = c.get("rows", ())
    if c.get("passed"):
        exact = sum(r["verdict"] == "exact" for r in rows)
        return (f"PASS: {c['target']} matches {c['ref']} on all {len(rows)} compared tensors over {c['num_samples']} "
                f"samples ({exact} identical)")
    first = next((r for r in rows if r["name"] == c.get("first_failing")), None)
    if first is None:
        return f"FAIL: {c['target']} differs from {c['ref']} on the deployed outputs"
    return f"FAIL: first failing tensor {first['name']} ({first['producer']}, {first['op_type']}): {first['reason']}"


def reproduce(inv: Invocation | None, divergence: Doc, expl: Doc, fix: Doc, kind: str,
              failing: bool) -> list[dict[str, str]]:
    """The commands that redo each step, and the next step after a failing comparison."""
    if inv is None:
        return []
    node = ((divergence or {}).get("culprit") or {}).get("op") or (expl or {}).get("node")
    cmds = [{"what": "compare tensor by tensor", "command": inv.base("compare") + " --json compare.json"}]
    if divergence is not None or failing:
        cmds.append({"what": "localize the op that introduces the error",
                     "command": inv.base("localize") + " --bundle bundle --json divergence.json"})
    if node and (expl is not None or kind == "diagnose"):
        cmds.append({"what": "explain its arithmetic and fit a profile", "command": inv.base("explain")
                     + f" --node {shlex.quote(node)} --characterize --profile-out fitted.toml --json explanation.json"})
    if node and (fix is not None or kind == "diagnose"):
        cmds.append({"what": "search and verify model-side fixes", "command": inv.base("fix")
                     + " --profile fitted.toml -o fixed.onnx --json fix.json"})
    if (fix or {}).get("best"):
        cmds.append({"what": "check the fixed model on the target",
                     "command": inv.base("compare", shlex.quote(f"{inv.out_dir}/fixed.onnx")) + " --probe outputs"})
    if divergence is not None and node:
        cmds.append({"what": "replay the culprit's cut with plain onnxruntime",
                     "command": "cd bundle && python repro.py"})
    if kind == "diagnose" or failing:
        cmds.append({"what": "all of it in one command", "command": inv.base("diagnose") + f" -o {inv.out_dir}"})
    cmds.append({"what": "re-render this report from report.json", "command": f"qprobe report {inv.out_dir}"})
    return cmds


def _title(kind: str, model: str, ref: str, target: str) -> str:
    what = {"compare": "comparison", "localize": "localization", "diagnose": "diagnosis"}.get(kind, kind)
    return f"qprobe {what}: {model} on {target} (reference {ref})"


def build_report(
    kind: str, model: ir.Model, model_name: str, *, comparison: Doc = None, divergence: Doc = None,
    explanation: Doc = None,
    fix: Doc = None, invocation: Invocation | None = None, stages: Sequence[Mapping[str, Any]] = (),
    notes: Sequence[str] = (), files: Sequence[Mapping[str, str]] = (), index: QuantIndex | None = None,
    model_file: str | None = None,
) -> Report:
    """The report of one run (``kind``: compare | localize | diagnose); documents as JSON dicts."""
    index = index or build_quant_index(model)
    facts = model_facts(model, index)
    first = comparison or divergence or {}
    policy = first.get("policy") or {}
    series = build_series(comparison, divergence, facts["op_inputs"], facts["graph_inputs"], policy)
    by_tensor = {p["tensor"]: p for p in series["points"]}
    focus = focus_of(divergence, comparison, facts["ops"])
    the_verdict = verdict(comparison, divergence, explanation, fix)
    views: dict[str, Any] = {
        "verdict": the_verdict, "series": series,
        "neighbourhood": build_neighbourhood(focus, facts["ops"], facts["quant"], facts["ratios"], by_tensor),
        "explanation": build_explanation_view(explanation), "fix": build_fix_view(fix),
        "checklist": build_checklist(comparison, divergence, explanation),
        "reproduce": reproduce(invocation, divergence, explanation, fix, kind, the_verdict["status"] != "pass"),
        "overlay": {**build_overlay(model, index, by_tensor, policy), "model_file": model_file},
        "summary": _summary(comparison, divergence, explanation, fix, stages),
        "stage_notes": _stage_notes(kind, stages),
    }
    ref, target = first.get("ref", invocation.ref if invocation else ""), first.get("target", "")
    return Report(
        kind=kind, title=_title(kind, model_name, ref, target), model=model_name, ref=ref, target=target,
        verdict=the_verdict, views=views, comparison=_doc(comparison), divergence=_doc(divergence),
        explanation=_doc(explanation), fix=_doc(fix), stages=tuple(dict(s) for s in stages), notes=tuple(notes),
        files=tuple(dict(f) for f in files), provenance=serde.provenance(),
    )


def _stage_notes(kind: str, stages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Why a stage has no document: its own note, else what kind of report this is."""
    out = {"explain": f"Not part of a {kind} report: `qprobe diagnose` explains the culprit.",
           "fix": f"Not part of a {kind} report: `qprobe diagnose` searches and verifies fixes."}
    out.update({s["name"]: s.get("note") or s.get("status", "") for s in stages if s.get("status") != "done"})
    return out


def _doc(d: Doc) -> dict[str, Any] | None:
    return None if d is None else serde.plain(dict(d))


def _summary(comparison: Doc, divergence: Doc, expl: Doc, fix: Doc,
             stages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Small facts the headers show: samples, target runs per stage and in total, the final outputs."""
    first = comparison or divergence or {}
    finals = (comparison or {}).get("deployed") or (divergence or {}).get("final_outputs") or []
    runs = {s["name"]: s.get("target_runs") for s in stages if s.get("target_runs") is not None}
    return {
        "samples": first.get("num_samples"), "inputs": first.get("inputs", ""),
        "final_outputs": [{"name": r["name"], "cos": (r.get("st") or {}).get("cos"), "verdict": r["verdict"],
                           "exact_pct": pct(100 * r["lsb"]["exact_share"]) if r.get("lsb") else "-"} for r in finals],
        "target_runs": runs, "total_target_runs": sum(v for v in runs.values() if v) if runs else None,
        "strategy": (divergence or {}).get("strategy"),
    }
