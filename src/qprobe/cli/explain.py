"""``qprobe explain``: what the target computes instead for one op; exit 0 explained, 1 not, 2 user error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.checks import check_outputs
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
from qprobe.explain import explain as run_explain
from qprobe.report.explain_terminal import explanation_renderables

NodeOpt = Annotated[str | None, typer.Option("--node", help="The op to explain (default: localize's culprit).")]
DivergenceOpt = Annotated[Path | None, typer.Option("--divergence",
                                                    help="A divergence.json from `qprobe localize --json`: explain its "
                                                         "culprit.")]
BundleOpt = Annotated[Path | None, typer.Option("--bundle",
                                                help="A repro bundle from `qprobe localize --bundle`: explain its "
                                                     "culprit from its arrays.")]
CharacterizeOpt = Annotated[bool, typer.Option("--characterize",
                                               help="Run synthetic probe models on the target and map its safe "
                                                    "envelope.")]
BudgetOpt = Annotated[int, typer.Option("--budget", min=1, help="Target runs --characterize may use.")]
ProfileOutOpt = Annotated[Path | None, typer.Option("--profile-out",
                                                    help="Write the fitted engine profile (TOML) here; use it as "
                                                         "engine:FILE.toml.")]
TolOpt = Annotated[str | None, typer.Option("--tol",
                                            help="Tolerance of the localization and input checks, e.g. "
                                                 "cos=0.99,bias=0.5.")]
ExplainTargetOpt = Annotated[str, typer.Option("--target",
                                               help="Target backend spec: engine:PROFILE, command:TEMPLATE, "
                                                    "recorded:PATH, ort, ort-fused.")]


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
    check_outputs({"--json": json_out, "--profile-out": profile_out}, inputs=(model, inputs, divergence))
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    with target_on(cluster, run.target) as tgt, console.status("explaining") as status:
        e = run_explain(run.model, run.ref, tgt, run.inputs, node=node, divergence=divergence, bundle=bundle,
                        characterize=characterize, budget=budget, policy=parse_policy(tol, None),
                        progress=lambda s: status.update(s), batch_size=batch_size, model_name=run.name,
                        profile_out=profile_out)
    for item in explanation_renderables(e, profile_out):
        console.print(item, highlight=False)
    if json_out is not None:
        e.save(json_out)
        console.print(f"wrote {json_out}")
    if not e.explained:
        raise typer.Exit(1)
