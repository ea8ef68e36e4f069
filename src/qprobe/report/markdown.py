"""The Markdown write-up: what an engineer would post on a vendor forum or in a bug tracker.

Rendered from the report's views alone: the board and toolchain fields to fill in, the
summary, the localization table, the culprit's operands and scales, the model-free finding,
the best hypothesis with its exact-match share, the workarounds tried with their results,
the fix, the rule-out checklist, the evidence files and the commands that reproduce it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qprobe.report.cells import fmt, pct
from qprobe.report.document import Report

FILL = "_(fill in)_"


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def _setup(r: Report) -> list[str]:
    s = r.views["summary"]
    versions = ", ".join(f"{k} {v}" for k, v in (r.provenance.get("versions") or {}).items())
    return ["## Setup", "", *table(["", ""], [
        ["Board / NPU", FILL], ["Toolchain (compiler, version, options)", FILL], ["Runtime / firmware version", FILL],
        ["Model", f"`{r.model}`"], ["Reference", f"`{r.ref}`"], ["Target", f"`{r.target}`"],
        ["Samples", f"{s.get('samples')} ({s.get('inputs')})"], ["Analysed with", versions or "qprobe"],
    ])]


def _summary(r: Report) -> list[str]:
    v = r.verdict
    lines = ["## Summary", "", f"**{v['status'].upper()}**: {v['line']}.", ""]
    for o in r.views["summary"].get("final_outputs", ()):
        lines.append(f"- final output `{o['name']}`: cos {fmt(o['cos'], '.5f')}, {o['verdict']}, {o['exact_pct']}% "
                     f"identical")
    runs = r.views["summary"].get("target_runs") or {}
    if runs:
        lines.append("- target runs: " + ", ".join(f"{k} {n}" for k, n in runs.items()))
    return [*lines, ""]


def _m(m: Mapping[str, Any] | None, key: str, spec: str) -> str:
    return "" if not m else fmt(m.get(key), spec)


def _localization(r: Report) -> list[str]:
    s = r.views["series"]
    if not s["n"]:
        return []
    rows = [[p["i"], f"`{p['tensor']}`", f"{p['op']} ({p['op_type']})", _m(p["acc"], "cos", ".4f"),
             _m(p["acc"], "mean_delta_lsb", "+.2f"), pct((p["acc"] or {}).get("exact_pct")),
             _m(p["local"], "cos", ".4f") + (" (inferred)" if p["local_basis"] == "inferred" else ""),
             _m(p["local"], "mean_delta_lsb", "+.2f"), ("**culprit**" if p["culprit"] else p["role"])]
            for p in s["points"]]
    return ["## Localization", "",
            f"Accumulated: the whole model on the target ({s['source']}). Local: the op alone, fed the reference's "
            "inputs. mean Δ is reference − target in LSB of the tensor's scale (> 0: the target is low).", "",
            *table(["#", "tensor", "op", "acc cos", "acc mean Δ LSB", "acc exact %", "local cos", "local mean Δ LSB",
                    "role"], rows)]


def _operands(r: Report) -> list[str]:
    g = r.views.get("neighbourhood")
    if not g:
        return []
    rows = [[f"`{e['tensor']}`", f"operand {e['operand']} (from {e['from']})", fmt(e["scale"], ".6g"),
             e["zero_point"], e["dtype"] or "float", fmt(e["ratio"], ".4f"), e["verdict"]]
            for e in g["edges"] if e["kind"] == "operand"]
    out = g.get("output")
    if out:
        rows.append([f"`{out['tensor']}`", "output", fmt(out["scale"], ".6g"), out["zero_point"],
                     out["dtype"] or "float",
                     "1", out["verdict"]])
    ratios = ", ".join(fmt(x, ".3f") for x in g.get("ratios") or ())
    return [f"## Operands and scales of `{g['focus']}` ({g['op_type']})", "",
            *table(["tensor", "role", "scale", "zero point", "type", "scale / output scale", "on the target"], rows),
            *([f"Operand-to-output scale ratios: **{ratios}**.", ""] if ratios else [])]


def _explanation(r: Report) -> list[str]:
    e = r.views.get("explanation")
    if not e:
        return ["## Explanation", "", r.views.get("stage_notes", {}).get("explain", "Not run."), ""]
    lines = ["## Model-free finding", "", e["sentence"] + ".", ""]
    if e["fit"]["kind"] == "operands":
        lines += table(["operand", "tensor", "expected coefficient", "effective coefficient"],
                       [[x["operand"], f"`{x['tensor']}`", fmt(x["expected"], ".4g"), fmt(x["effective"], ".4g")]
                        for x in e["fit"]["rows"]])
    best = e.get("best")
    lines += ["## Best hypothesis", ""]
    if best and e["explained"]:
        lines.append(f"`{best['label']}` reproduces **{best['exact_pct']:.3f}%** of the culprit's output codes exactly "
                     f"(mean Δ {fmt(best['mean_delta_lsb'], '+.4f')} LSB, max |Δ| {best['max_abs_lsb']}).")
    elif best:
        lines.append(f"Unexplained: the best hypothesis, `{best['label']}`, reproduces {best['exact_pct']:.2f}% "
                     "(needs 99%).")
    else:
        lines.append("No hypothesis space for this op.")
    if e.get("envelope"):
        lines += ["", f"Safe envelope: {e['envelope']['statement']}."]
    lines.append(f"\nTarget runs: {e['target_runs']} ({e['characterization_runs']} for characterization).")
    return [*lines, ""]


def _fix(r: Report) -> list[str]:
    x = r.views.get("fix")
    if not x:
        return ["## Workarounds and fix", "", r.views.get("stage_notes", {}).get("fix", "Not run."), ""]
    lines = ["## Workarounds tried", ""]
    if x["workarounds"]:
        lines += table(["workaround", "result here", "fails as on the board?", "why"],
                       [[f"`{w['pass']}`", w["verdict"], "-" if w["fails_as_on_board"] is None else
                         ("yes" if w["fails_as_on_board"] else "no"), w["why"]] for w in x["workarounds"]])
    lines += table(["#", "candidate", "verdict", "final cos", "max Δ LSB", "cost", "reason"],
                   [[c["rank"], f"`{c['pass']}`", c["verdict"], fmt(c["final_cos"], ".5f"),
                     fmt(c["max_abs_lsb"], ".0f"),
                     c["cost"], c["reason"]] for c in x["rows"]])
    b = x.get("best")
    lines += ["## The fix", ""]
    if b:
        truth = "" if b.get("truth_rmse") is None else f", RMSE against the ground truth {b['truth_rmse']:.4f}"
        lines.append(f"`{b['pass']}`: {b['verdict']} on `{b['backend']}`, final cos "
                     f"{fmt(b['final_cos'], '.5f')}{truth}; "
                     f"cost {b['cost_text']}. The rewritten model is `fixed.onnx`.")
    else:
        lines.append("No candidate brings every final output within tolerance.")
    return [*lines, ""]


def _checklist(r: Report) -> list[str]:
    return ["## Rule-out checklist", "", *[f"- [{'x' if c['status'] in ('ruled out', 'confirmed') else ' '}] "
            f"**{c['check']}**: {c['status']}, {c['evidence']}" + (f" ({c['what']})" if c.get("what") else "")
            for c in r.views["checklist"]], ""]


def _evidence(r: Report) -> list[str]:
    lines = ["## Evidence files", ""]
    lines += [f"- `{f['path']}`: {f['what']}" for f in r.files] or ["- `report.json`: every number in this post"]
    cmds = r.views.get("reproduce") or []
    if cmds:
        lines += ["", "## Reproduce", ""]
        for c in cmds:
            lines += [f"{c['what']}:", "", "```sh", c["command"], "```", ""]
    return lines


def render_markdown(report: Report) -> str:
    v = report.verdict
    g = report.views.get("neighbourhood") or {}
    head = (f"# {g.get('op_type', 'op')} `{v['culprit']}` computes wrong on `{report.target}`" if v.get("culprit")
            else f"# {report.title}")
    parts = [head, "", *_setup(report), *_summary(report), *_localization(report), *_operands(report),
             *_explanation(report), *_fix(report), *_checklist(report), *_evidence(report)]
    return "\n".join(parts).rstrip() + "\n"
