"""``qprobe explain``: what the target computes instead for one op; exit 0 explained, 1 not, 2 user error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qprobe.cli.common import (
    BatchOpt,
    ClusterOpt,
    ExampleOpt,
    InputsOpt,
    JsonOpt,
    ModelArg,
    RandomModeOpt,
    RandomOpt,
    RefKv,
    RefOpt,
    SeedOpt,
    TargetKv,
    console,
    resolve_run,
)
from qprobe.compare import parse_policy
from qprobe.errors import InputError
from qprobe.execute import target_on
from qprobe.explain import Explanation
from qprobe.explain import explain as run_explain

NodeOpt = Annotated[str | None, typer.Option("--node", help="The op to explain (default: localize's culprit).")]
DivergenceOpt = Annotated[Path | None, typer.Option("--divergence", help="A divergence.json from `qprobe localize --json`: explain its culprit.")]
BundleOpt = Annotated[Path | None, typer.Option("--bundle", help="A repro bundle from `qprobe localize --bundle`: explain its culprit from its arrays.")]
CharacterizeOpt = Annotated[bool, typer.Option("--characterize", help="Run synthetic probe models on the target and map its safe envelope.")]
BudgetOpt = Annotated[int, typer.Option("--budget", min=1, help="Target runs --characterize may use.")]
ProfileOutOpt = Annotated[Path | None, typer.Option("--profile-out", help="Write the fitted engine profile (TOML) here; use it as engine:FILE.toml.")]
TolOpt = Annotated[str | None, typer.Option("--tol", help="Tolerance of the localization and input checks, e.g. cos=0.99,bias=0.5.")]
ExplainTargetOpt = Annotated[str, typer.Option("--target", help="Target backend spec: engine:PROFILE, command:TEMPLATE, recorded:PATH, ort, ort-fused.")]


def explain(
    model: ModelArg = None,
    example: ExampleOpt = None,
    ref: RefOpt = "ort-fused",
    target: ExplainTargetOpt = "",
    ref_opt: RefKv = None,
    target_opt: TargetKv = None,
    inputs: InputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = 42,
    random_mode: RandomModeOpt = "uniform",
    node: NodeOpt = None,
    divergence: DivergenceOpt = None,
    bundle: BundleOpt = None,
    characterize: CharacterizeOpt = False,
    budget: BudgetOpt = 4,
    profile_out: ProfileOutOpt = None,
    json_out: JsonOpt = None,
    tol: TolOpt = None,
    batch_size: BatchOpt = 64,
    cluster: ClusterOpt = None,
) -> None:
    """Rank arithmetic hypotheses that reproduce the target's output codes for one op, with model-free
    evidence, optionally the safe envelope from characterization runs, and a fitted engine profile.

    The default op is localize's culprit. Below 99% exact match nothing is claimed: the command says
    so, names the non-arithmetic causes that fit and prints the rule-out checklist (exit 1).
    """
    if not target:
        raise InputError("missing --target: the backend whose arithmetic to explain, e.g. --target engine:arith16-wrap")
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    with target_on(cluster, run.target) as tgt, console.status("explaining") as status:
        e = run_explain(run.model, run.ref, tgt, run.inputs, node=node, divergence=divergence, bundle=bundle,
                        characterize=characterize, budget=budget, policy=parse_policy(tol, None),
                        progress=lambda s: status.update(s), batch_size=batch_size, model_name=run.name,
                        profile_out=profile_out)
    render(e, profile_out)
    if json_out is not None:
        e.save(json_out)
        console.print(f"wrote {json_out}")
    if not e.explained:
        raise typer.Exit(1)


def hypothesis_table(e: Explanation) -> Table:
    t = Table(title=f"hypotheses for {e.node} ({e.op_type}, class {e.op_class}): knobs that differ from a built-in "
              "profile, scored on the op's output codes", title_justify="left")
    for col in ("#", "hypothesis", "exact %", "mean Δ LSB", "mean |Δ| LSB", "max |Δ|", "whole model", "same as"):
        t.add_column(col)
    for i, h in enumerate(e.hypotheses[:12], 1):
        model = "-" if h.model_failures is None else ("all pass" if not h.model_failures else f"{h.model_failures} fail")
        t.add_row(str(i), h.label(), f"{100 * h.exact_match:.3f}", f"{h.mean_delta_lsb:+.4f}",
                  f"{h.mean_abs_delta_lsb:.4f}", str(h.max_abs_lsb), model, str(h.equivalents))
    return t


def _fit_lines(e: Explanation) -> list[str]:
    fit = e.linear_fit
    if fit.get("kind") == "operands":
        rows = [f"  {r['tensor']}: effective {r['effective']:.4g}, expected {r['expected']:.4g}" for r in fit["operands"]
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


def render(e: Explanation, profile_out: Path | None) -> None:
    console.print(f"[bold]explain[/] {e.node} ({e.op_type}) on {e.target}: {e.observations}", highlight=False)
    for ic in e.input_checks:
        console.print(f"  input {ic.tensor}: {ic.verdict} on the target ({ic.reason})", highlight=False)
    if e.hypotheses:
        console.print(hypothesis_table(e))
    console.print(f"model-free: {e.sentence}", highlight=False)
    for line in [*_fit_lines(e), _pattern_line(e)]:
        if line:
            console.print(line, highlight=False)
    for env in e.envelopes or ((e.envelope,) if e.envelope is not None else ()):
        console.print(f"envelope: {env.statement}", highlight=False)
    for note in e.notes:
        console.print(f"note: {note}", highlight=False)
    if e.explained and e.best is not None:
        fails = [r.tensor for r in e.profile_check if r.failed]
        check = f"{len(e.profile_check) - len(fails)}/{len(e.profile_check)} tensors pass" + \
            (f" (failing: {', '.join(fails)})" if fails else "")
        console.print(f"[bold green]EXPLAINED[/]: {e.best.label()} reproduces {100 * e.best.exact_match:.3f}% of "
                      f"{e.node}'s codes; fitted profile (base {e.profile_base}) against the target: {check}",
                      highlight=False)
        for r in e.profile_check:
            if r.verdict != "exact":
                share = "-" if r.exact_share is None else f"{100 * r.exact_share:.2f}% exact"
                console.print(f"  {r.tensor}: {r.verdict} ({share}, {r.reason})", highlight=False)
        if profile_out is not None:
            console.print(f"wrote {profile_out} (use it as --target engine:{profile_out})", highlight=False)
    else:
        best = f"best hypothesis reproduces {100 * e.best.exact_match:.2f}%" if e.best else "no hypothesis space"
        console.print(f"[bold red]UNEXPLAINED[/]: {best} of {e.node}'s codes (needs 99%)", highlight=False)
        for c in e.causes:
            console.print(f"  possible cause: {c.name} (score {c.score:.2f}): {c.evidence}", highlight=False)
        console.print("rule out first (docs/neural-art.md):", highlight=False)
        for line in e.checklist:
            console.print(f"  - {line}", highlight=False)
    runs = f"target runs used: {e.target_runs}"
    if e.characterization_runs:
        runs += f" ({e.characterization_runs} for characterization)"
    console.print(runs, highlight=False)
