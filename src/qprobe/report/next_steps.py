"""What to do after ``qprobe diagnose``: why the culprit fails, where its repro bundle is, which
commands explain it and try a fix. Lines for the terminal, from the report alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qprobe.report.document import Report

FITTED = "fitted.toml"  # the profile explain fitted, in the report folder


def next_steps(report: Report, out_dir: Path, ratios: Sequence[float] = ()) -> list[str]:
    """The closing lines of a diagnosis (empty when nothing failed); ``ratios``: the culprit's
    operand-to-output scale ratios."""
    culprit = (report.verdict or {}).get("culprit")
    if not culprit:
        return []
    lines = ["[bold]next steps[/]:", f"  why {culprit} fails: {_why(report, ratios)}"]
    bundle = out_dir / "bundle"
    if (bundle / "README.md").exists():
        lines.append(f"  the repro: {bundle / 'README.md'} says what fails; `cd {bundle} && python repro.py` "
                     "replays the op alone with plain onnxruntime")
    commands = {r["what"]: r["command"] for r in report.views.get("reproduce") or []}
    for what, label in (("explain its arithmetic and fit a profile", "explain it"),
                        ("search and verify model-side fixes", "try a fix"),
                        ("check the fixed model on the target", "check the fix")):
        if what in commands and (label != "check the fix" or (out_dir / "fixed.onnx").exists()):
            command = commands[what].replace(" --profile fitted.toml", f" --profile {out_dir / FITTED}")
            lines.append(f"  {label}: {command}")
    lines.append(f"  everything above, with charts: {out_dir / 'report.html'}")
    return lines


def _why(report: Report, ratios: Sequence[float]) -> str:
    have = f"its operand/output scale ratios are {', '.join(f'{r:.3f}' for r in ratios)}" if ratios else \
        "it is no ratio-driven op (see the report)"
    statement = _limit(report.explanation or {})
    if statement:
        return f"{have}; on this target: {statement}"
    return f"{have}; `qprobe explain --characterize` measures the target's limit"


def _limit(explanation: dict[str, Any]) -> str:
    envelope = explanation.get("envelope") or {}
    return str(envelope.get("statement") or "")
