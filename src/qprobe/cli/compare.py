"""``qprobe compare``: two backends, tensor by tensor; exit 0 if all pass, 1 if any fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.common import (
    BatchOpt,
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
    TargetOpt,
    console,
    progress_bar,
    resolve_run,
)
from qprobe.compare import compare_backends, parse_policy
from qprobe.report.terminal import comparison_summary, comparison_table
from qprobe.tensors import TraceFolder

ProbeOpt = Annotated[str, typer.Option("--probe", help="outputs | op-outputs | all | T1,T2,... (tensor names).")]
TolOpt = Annotated[str | None, typer.Option("--tol", help="Tolerance, e.g. cos=0.99,bias=0.5,max=2 (bias and max in LSB).")]
TolTensorOpt = Annotated[list[str] | None, typer.Option("--tol-tensor", help="Per-tensor tolerance TENSOR:cos=...,bias=... (repeatable).")]


def compare(
    model: ModelArg = None,
    example: ExampleOpt = None,
    ref: RefOpt = "ort",
    target: TargetOpt = "ort-fused",
    ref_opt: RefKv = None,
    target_opt: TargetKv = None,
    inputs: InputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = 42,
    random_mode: RandomModeOpt = "uniform",
    probe: ProbeOpt = "op-outputs",
    tol: TolOpt = None,
    tol_tensor: TolTensorOpt = None,
    classifier: Annotated[bool, typer.Option("--classifier", help="Report accuracy on outputs (like stedgeai --classifier).")] = False,
    batch_size: BatchOpt = 64,
    json_out: JsonOpt = None,
    save_traces: Annotated[Path | None, typer.Option("--save-traces", help="Save every batch's reference and target Trace (JSON + .npz) into this folder.")] = None,
) -> None:
    """Compare a reference and a target backend tensor by tensor, with ST's metrics and LSB metrics."""
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    policy = parse_policy(tol, tol_tensor)
    with progress_bar("comparing") as update:
        cmp = compare_backends(
            run.model, run.ref, run.target, run.inputs, probe=probe, policy=policy, batch_size=batch_size,
            classifier=True if classifier else None, progress=update, model_name=run.name,
            on_traces=TraceFolder(save_traces) if save_traces is not None else None,
        )
    console.print(comparison_table(cmp))
    for line in comparison_summary(cmp):
        console.print(line, highlight=False)
    if json_out is not None:
        cmp.save(json_out)
        console.print(f"wrote {json_out}")
    raise typer.Exit(0 if cmp.passed else 1)

