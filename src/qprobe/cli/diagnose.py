"""``qprobe diagnose``: compare -> localize -> explain -> fix, and the report folder (HTML, Markdown, overlays)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.checks import ForceOpt, check_outputs, check_tolerance_names
from qprobe.cli.common import (
    BatchOpt,
    ExampleOpt,
    InputsOpt,
    ModelArg,
    RandomModeOpt,
    RandomOpt,
    RefKv,
    RefOpt,
    SeedOpt,
    TargetKv,
    TolOpt,
    TolTensorOpt,
    console,
    example_paths,
    resolve_run,
)
from qprobe.cli.progress import StageDisplay
from qprobe.compare import parse_policy
from qprobe.errors import InputError
from qprobe.model.quant import build_quant_index
from qprobe.report.build import Invocation
from qprobe.report.diagnose import DiagnoseRequest
from qprobe.report.diagnose import diagnose as run_diagnose
from qprobe.report.next_steps import next_steps
from qprobe.report.write import replaceable

OutOpt = Annotated[Path, typer.Option("-o", "--output",
                                      help="The report folder to write (replaced when it holds an earlier report).")]
FloatOpt = Annotated[Path | None, typer.Option("--float-model",
                                               help="The float model the int8 one was quantized from (fix: "
                                                    "requantize-model).")]
CalibOpt = Annotated[Path | None, typer.Option("--calibration",
                                               help=".npz of calibration inputs (fix: requantize-model).")]
TruthOpt = Annotated[Path | None, typer.Option("--truth", help=".npz of ground-truth outputs (fix ranks by accuracy).")]
ExitCodeOpt = Annotated[bool, typer.Option(
    "--exit-code", help="Exit 1 when the model fails on the target and no fix was found.")]
DiagTargetOpt = Annotated[str, typer.Option("--target",
                                            help="Target backend spec: engine:PROFILE, command:TEMPLATE, "
                                                 "recorded:PATH, ort, ort-fused.")]


def _invocation(model: Path | None, example: str | None, ref: str, target: str, target_opt: list[str] | None,
                inputs: Path | None, random: int | None, seed: int, random_mode: str, out: Path) -> Invocation:
    m = f"--example {example}" if example else shlex.quote(str(model))
    ins = f"--inputs {shlex.quote(str(inputs))}" if inputs else (
        f"--random {random} --seed {seed}" + ("" if random_mode == "uniform" else f" --random-mode {random_mode}")
        if random is not None else "")
    return Invocation(m, ref, target, tuple(target_opt or ()), ins, str(out))


def _example_files(example: str | None, float_model: Path | None, calibration: Path | None,
                   truth: Path | None) -> tuple[Path | None, Path | None, Path | None]:
    if example is None:
        return float_model, calibration, truth
    from qprobe.examples.tcn import FILES, packaged_example_dir

    d = packaged_example_dir()
    return float_model or d / FILES["float_model"], calibration or d / FILES["calibration"], truth or d / FILES["truth"]


def diagnose(
    model: ModelArg = None, example: ExampleOpt = None, ref: RefOpt = "ort-fused", target: DiagTargetOpt = "",
    ref_opt: RefKv = None, target_opt: TargetKv = None, inputs: InputsOpt = None, random: RandomOpt = None,
    seed: SeedOpt = 42, random_mode: RandomModeOpt = "uniform", float_model: FloatOpt = None,
    calibration: CalibOpt = None, truth: TruthOpt = None, tol: TolOpt = None, tol_tensor: TolTensorOpt = None,
    batch_size: BatchOpt = 64, output: OutOpt = Path("qprobe-report"),
    exit_code: ExitCodeOpt = False,
    force: ForceOpt = False,
) -> None:
    """Find, explain and fix the target's defect in one command, and write the report folder.

    Runs compare, then (when something fails) localize, explain (characterizing the target when it
    runs models) and fix; writes report.json, report.html, report.md, model_explorer/*.json, the
    stages' documents, fixed.onnx when a fix was found and the culprit's repro bundle.
    """
    if not target:
        raise InputError("missing --target: the backend to diagnose the model on, e.g. --target engine:arith16-wrap")
    check_outputs(dirs={"-o": output}, force=force, replaceable=replaceable,
                  inputs=(model, inputs, float_model, calibration, truth))
    policy = parse_policy(tol, tol_tensor)
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    check_tolerance_names(policy, run.model)
    fm, cal, tr = _example_files(example, float_model, calibration, truth)
    req = DiagnoseRequest(
        run.model, run.name, run.ref, run.target, run.inputs, output,
        _invocation(model, example, ref, target, target_opt, inputs, random, seed, random_mode, output),
        model_path=example_paths(example)[0] if example else model, float_model=fm, calibration=cal, truth=tr,
        policy=policy, batch_size=batch_size, force=force,
    )
    with StageDisplay(console) as display:
        result = run_diagnose(req, display)
    v = result.report.verdict
    console.print(f"[bold]verdict[/]: {v['line']}", highlight=False, soft_wrap=True)
    console.print(f"[bold]fix[/]: {v['fix'] or 'none found'}" + (f" -> {result.fixed}" if result.fixed else ""),
                  highlight=False)
    console.print(f"[bold]report[/]: {result.out_dir / 'report.html'}", highlight=False)
    index = build_quant_index(run.model)
    op = next((o for o in index.ops if o.name == v.get("culprit")), None)
    for line in next_steps(result.report, result.out_dir, (index.scale_ratios(op) or []) if op is not None else ()):
        console.print(line, highlight=False, soft_wrap=True)
    if exit_code and v["status"] == "fail":
        raise typer.Exit(1)
