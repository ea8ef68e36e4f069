"""Terminal rendering of an ``Explanation`` (rich): the hypothesis table and the summary lines.

It formats; it computes nothing. ``explanation_renderables`` returns what the CLI prints, in order.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.table import Table

from qprobe.explain import Explanation


def hypothesis_table(e: Explanation) -> Table:
    t = Table(title=f"hypotheses for {e.node} ({e.op_type}, class {e.op_class}): knobs that differ from a built-in "
              "profile, scored on the op's output codes", title_justify="left")
    for col in ("#", "hypothesis", "exact %", "mean Δ LSB", "mean |Δ| LSB", "max |Δ|", "whole model", "same as"):
        t.add_column(col)
    for i, h in enumerate(e.hypotheses[:12], 1):
        model = "-" if h.model_failures is None else ("all pass" if not h.model_failures
                                                      else f"{h.model_failures} fail")
        t.add_row(str(i), h.label(), f"{100 * h.exact_match:.3f}", f"{h.mean_delta_lsb:+.4f}",
                  f"{h.mean_abs_delta_lsb:.4f}", str(h.max_abs_lsb), model, str(h.equivalents))
    return t


def _fit_lines(e: Explanation) -> list[str]:
    fit = e.linear_fit
    if fit.get("kind") == "operands":
        rows = [f"  {r['tensor']}: effective {r['effective']:.4g}, expected {r['expected']:.4g}" for r
                in fit["operands"]
                if r["effective"] is not None]
        off = fit["offset"].get("effective")
        return rows + ([f"  offset {off:+.3f} LSB"] if off is not None else [])
    if fit.get("kind") == "channels":
        gains = [g for g in fit["gains"] if g is not None]
        return [f"  per-channel gain: min {min(gains):.4g}, max {max(gains):.4g}" if gains else "  no channel fit",
                f"  channels that stop short of the exact result: {len(fit['clipped'])} of {fit['channels']}",
                f"  mean residual {fit['mean_residual']:+.3f} LSB"]
    return []


def _pattern_line(e: Explanation) -> str:
    p = e.pattern
    if p is None:
        return ""
    parts = [f"{100 * p.error_share:.2f}% of the codes differ from the reference"]
    if p.error_share:
        parts.append(f"{100 * p.one_lsb_share:.1f}% of those by ±1")
        if p.tie_share is not None:
            parts.append(f"{100 * p.tie_share:.1f}% at rounding ties")
    if p.consistency is not None:
        parts.append(f"same inputs give the same output for {100 * p.consistency:.2f}%")
    return "error pattern: " + "; ".join(parts)


def explanation_renderables(e: Explanation, profile_out: Path | None) -> list[RenderableType]:
    """What ``qprobe explain`` prints for ``e``, in order."""
    out: list[RenderableType] = []
    out.append(f"[bold]explain[/] {e.node} ({e.op_type}) on {e.target}: {e.observations}")
    for ic in e.input_checks:
        out.append(f"  input {ic.tensor}: {ic.verdict} on the target ({ic.reason})")
    if e.hypotheses:
        out.append(hypothesis_table(e))
    out.append(f"model-free: {e.sentence}")
    for line in [*_fit_lines(e), _pattern_line(e)]:
        if line:
            out.append(line)
    for env in e.envelopes or ((e.envelope,) if e.envelope is not None else ()):
        out.append(f"envelope: {env.statement}")
    for note in e.notes:
        out.append(f"note: {note}")
    if e.explained and e.best is not None:
        fails = [r.tensor for r in e.profile_check if r.failed]
        check = f"{len(e.profile_check) - len(fails)}/{len(e.profile_check)} tensors pass" + \
            (f" (failing: {', '.join(fails)})" if fails else "")
        out.append(f"[bold green]EXPLAINED[/]: {e.best.label()} reproduces {100 * e.best.exact_match:.3f}% of "
                      f"{e.node}'s codes; fitted profile (base {e.profile_base}) against the target: {check}")
        for r in e.profile_check:
            if r.verdict != "exact":
                share = "-" if r.exact_share is None else f"{100 * r.exact_share:.2f}% exact"
                out.append(f"  {r.tensor}: {r.verdict} ({share}, {r.reason})")
        if profile_out is not None:
            out.append(f"wrote {profile_out} (use it as --target engine:{profile_out})")
    else:
        best = f"best hypothesis reproduces {100 * e.best.exact_match:.2f}%" if e.best else "no hypothesis space"
        out.append(f"[bold red]UNEXPLAINED[/]: {best} of {e.node}'s codes (needs 99%)")
        for c in e.causes:
            out.append(f"  possible cause: {c.name} (score {c.score:.2f}): {c.evidence}")
        out.append("rule out first (docs/neural-art.md):")
        for line in e.checklist:
            out.append(f"  - {line}")
    runs = f"target runs used: {e.target_runs}"
    if e.characterization_runs:
        runs += f" ({e.characterization_runs} for characterization)"
    if e.target_runs_cached:
        runs += f" ({e.target_runs - e.target_runs_cached} ran, {e.target_runs_cached} from the cache)"
    out.append(runs)
    return out
