"""``qprobe localize``: the op that introduces the target's error, in few target runs; exit 0 when done."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import onnx_ir as ir
import typer

from qprobe.cli.checks import ForceOpt, check_outputs, check_tolerance_names
from qprobe.cli.common import (
    AutoRefOpt,
    BatchOpt,
    ClusterOpt,
    ExampleOpt,
    InputsOpt,
    JsonOpt,
    ModelArg,
    RandomModeOpt,
    RandomOpt,
    RefKv,
    SeedOpt,
    TargetKv,
    TolOpt,
    TolTensorOpt,
    WideOpt,
    console,
    resolve_run,
    use_wide,
)
from qprobe.cli.progress import run_progress
from qprobe.compare import parse_policy
from qprobe.errors import InputError
from qprobe.execute import localize_on
from qprobe.localize import STRATEGIES, Divergence, Localization
from qprobe.localize.culprit import culprit_cut
from qprobe.model.quant import build_quant_index
from qprobe.report.bundle import Repro, write_bundle
from qprobe.report.localize import divergence_table, summary

StrategyOpt = Annotated[str, typer.Option("--strategy", help=f"{' | '.join(STRATEGIES)}.")]
LocTargetOpt = Annotated[str, typer.Option("--target",
                                           help="Target backend spec: engine:PROFILE, command:TEMPLATE, recorded:PATH, "
                                                "ort, ort-fused.")]
OpsOpt = Annotated[str | None, typer.Option("--ops", help="isolate: only these ops (comma-separated node names).")]
BundleOpt = Annotated[Path | None, typer.Option("--bundle",
                                                help="Write a repro bundle of the culprit into this folder.")]
ClassifyOpt = Annotated[bool, typer.Option("--classify/--no-classify",
                                           help="Also isolate the failing ops after the culprit (carrier or not).")]



def localize(
    model: ModelArg = None,
    example: ExampleOpt = None,
    ref: AutoRefOpt = None,
    target: LocTargetOpt = "",
    ref_opt: RefKv = None,
    target_opt: TargetKv = None,
    inputs: InputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = 42,
    random_mode: RandomModeOpt = "uniform",
    strategy: StrategyOpt = "auto",
    ops: OpsOpt = None,
    classify: ClassifyOpt = True,
    tol: TolOpt = None,
    tol_tensor: TolTensorOpt = None,
    batch_size: BatchOpt = 64,
    bundle: BundleOpt = None,
    json_out: JsonOpt = None,
    exit_code: Annotated[bool, typer.Option("--exit-code",
                                            help="Exit 1 when an op introducing an error is found (for CI); default: "
                                                 "exit 0 when localization completes.")] = False,
    force: ForceOpt = False,
    wide: WideOpt = False,
    cluster: ClusterOpt = None,
) -> None:
    """Find the op that introduces the error (not one that only carries it), counting target runs.

    The reference defaults to ort-fused (ort for models with float weights inside QDQ groups):
    onnxruntime's integer QDQ kernels, which the engine's
    `onnxruntime` profile reproduces bit for bit, so every op the target computes like
    onnxruntime compares exact and only real defects remain.
    """
    if not target:
        raise InputError("missing --target: the backend to localize the error on, e.g. --target engine:arith16-wrap")
    use_wide(wide)
    check_outputs({"--json": json_out}, {"--bundle": bundle}, force=force, inputs=(model, inputs))
    policy = parse_policy(tol, tol_tensor)
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    m, name, op_list = run.model, run.name, [o.strip() for o in ops.split(",") if o.strip()] if ops else None
    check_tolerance_names(policy, m)
    with run_progress(console, "localizing (each target run: prepare the model, run every sample)") as shown:
        loc = localize_on(cluster, m, run.ref, run.target, run.inputs, strategy=strategy, ops=op_list,
                          classify=classify, policy=policy, batch_size=batch_size, model_name=name, progress=shown)
    div = loc.divergence
    _show(div, m, json_out)
    if bundle is not None:
        _bundle(bundle, m, loc, run.ref.spec, target, name, target_opt)
    if exit_code and div.culprit is not None:
        raise typer.Exit(1)


def _show(div: Divergence, m: ir.Model, json_out: Path | None) -> None:
    console.print(f"[bold]strategy[/]: {div.strategy} ({div.reason})", highlight=False)
    console.print(divergence_table(div))
    for note in div.notes:
        console.print(f"note: {note}", highlight=False)
    for line in summary(div, build_quant_index(m)):
        console.print(line, highlight=False)
    if json_out is not None:
        div.save(json_out)
        console.print(f"wrote {json_out}")


def _bundle(path: Path, m: ir.Model, loc: Localization, ref: str, target: str, name: str,
            target_opt: list[str] | None) -> None:
    div = loc.divergence
    files = write_bundle(path, Repro(
        title=div.verdict(), cut=culprit_cut(m, div, loc.isolated), ref=ref, target=target, source=name,
        command=shlex.join(["qprobe", *sys.argv[1:]]), target_options=tuple(target_opt or ()), divergence=div,
    ))
    console.print(f"wrote the repro bundle {path}/ ({', '.join(p.name for p in files)})")
