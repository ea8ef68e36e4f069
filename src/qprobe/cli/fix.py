"""``qprobe fix``: rewrite the op the target computes wrong, verify every candidate, write the best model.

Exit 0 when a verified fix (or, without target runs, a predicted one) brings every final
output within tolerance, 1 when none does, 2 on a user error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from qprobe.backends import Backend, create_backend
from qprobe.cli.checks import ForceOpt, check_outputs
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
    console,
    resolve_run,
)
from qprobe.compare import parse_policy
from qprobe.errors import InputError
from qprobe.execute import target_on
from qprobe.fileio import staged_dir
from qprobe.fix import FixResult
from qprobe.fix import fix as run_fix
from qprobe.model.inputs import read_npz
from qprobe.model.loader import save_model
from qprobe.report.fix_terminal import fix_renderables

ProfileOpt = Annotated[Path | None, typer.Option("--profile",
                                                 help="Fitted profile of the target (TOML from `qprobe explain "
                                                      "--profile-out`): the emulation candidates are predicted on.")]
EmulateOpt = Annotated[str | None, typer.Option("--emulate",
                                                help="Emulate the target with this engine profile (built-in name or "
                                                     ".toml) or backend spec.")]
NodeOpt = Annotated[str | None, typer.Option("--node",
                                             help="The op to rewrite (default: the culprit localize finds on the "
                                                  "target).")]
FloatOpt = Annotated[Path | None, typer.Option("--float-model",
                                               help="The float model the int8 one was quantized from (for "
                                                    "requantize-model).")]
CalibOpt = Annotated[Path | None, typer.Option("--calibration",
                                               help=".npz of calibration inputs, one array per model input (for "
                                                    "requantize-model).")]
TruthOpt = Annotated[Path | None, typer.Option("--truth",
                                               help=".npz of ground-truth outputs keyed by output name, samples on "
                                                    "axis 0 (ranks by accuracy).")]
VerifyOpt = Annotated[int | None, typer.Option("--verify-on-target", min=0,
                                               help="Run the best K predicted candidates on the target (default 2; 0 "
                                                    "for recorded data).")]
KeepOpt = Annotated[Path | None, typer.Option("--keep-candidates",
                                              help="Write every candidate model into this folder.")]
OutOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Write the best candidate model here.")]
PassesOpt = Annotated[str | None, typer.Option("--passes", help="Only these rewrite passes (comma-separated).")]
TolOpt = Annotated[str | None, typer.Option("--tol",
                                            help="Tolerance of the final outputs, e.g. cos=0.99,bias=0.5,max=2.")]

def fix(
    model: ModelArg = None, example: ExampleOpt = None, ref: AutoRefOpt = None,
    target: Annotated[str, typer.Option("--target", help="Target backend spec.")] = "",
    ref_opt: RefKv = None, target_opt: TargetKv = None, profile: ProfileOpt = None, emulate: EmulateOpt = None,
    node: NodeOpt = None, float_model: FloatOpt = None, calibration: CalibOpt = None, truth: TruthOpt = None,
    verify_on_target: VerifyOpt = None, keep_candidates: KeepOpt = None, output: OutOpt = None,
    json_out: JsonOpt = None, passes: PassesOpt = None, tol: TolOpt = None, inputs: InputsOpt = None,
    random: RandomOpt = None, seed: SeedOpt = 42, random_mode: RandomModeOpt = "uniform", batch_size: BatchOpt = 64,
    force: ForceOpt = False,
    cluster: ClusterOpt = None,
) -> None:
    """Search model-side workarounds for the op the target gets wrong, verify each, write the best."""
    if not target:
        raise InputError("missing --target: the backend to fix the model for, e.g. --target engine:arith16-wrap")
    check_outputs({"-o": output, "--json": json_out}, {"--keep-candidates": keep_candidates}, force=force,
                  inputs=(model, inputs, float_model, calibration, truth, profile))
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    float_model, calibration, truth = _example_files(example, float_model, calibration, truth)
    with target_on(cluster, run.target) as tgt, console.status("fixing") as status:
        result = run_fix(
            run.model, run.ref, tgt, run.inputs, node=node, emulation=_emulation(profile, emulate),
            float_model=_existing(float_model, "--float-model"), calibration=_existing(calibration, "--calibration"),
            truth=_truth(truth), verify_on_target=verify_on_target, policy=parse_policy(tol, None),
            passes=[p.strip() for p in passes.split(",") if p.strip()] if passes else None, batch_size=batch_size,
            model_name=run.name, progress=lambda msg: status.update(msg),
        )
    for item in fix_renderables(result):
        console.print(item, highlight=False)
    _write(result, output, keep_candidates, json_out)
    if not result.passed:
        raise typer.Exit(1)


def _example_files(example: str | None, float_model: Path | None, calibration: Path | None,
                   truth: Path | None) -> tuple[Path | None, Path | None, Path | None]:
    if example is None:
        return float_model, calibration, truth
    from qprobe.examples.tcn import FILES, packaged_example_dir

    d = packaged_example_dir()
    return (float_model or d / FILES["float_model"], calibration or d / FILES["calibration"],
            truth or d / FILES["truth"])


def _existing(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist; pass an existing file")
    return path


def _emulation(profile: Path | None, emulate: str | None) -> Backend | None:
    if profile is not None and emulate is not None:
        raise InputError("give either --profile or --emulate, not both")
    if profile is not None:
        return create_backend(f"engine:{_existing(profile, '--profile')}")
    if emulate is not None:
        return create_backend(emulate if ":" in emulate else f"engine:{emulate}")
    return None


def _truth(path: Path | None) -> dict[str, np.ndarray] | None:
    if path is None:
        return None
    _existing(path, "--truth")
    return read_npz(path)


def _write(result: FixResult, output: Path | None, keep: Path | None, json_out: Path | None) -> None:
    best = result.best
    if output is not None and best is not None and best.model is not None:
        save_model(best.model, output)
        console.print(f"wrote {output}")
    if keep is not None:
        with staged_dir(keep) as stage:
            for i, c in enumerate(result.candidates, 1):
                if c.model is not None:
                    save_model(c.model, stage / f"{i:02d}_{c.pass_name}.onnx")
        console.print(f"wrote every candidate into {keep}/")
    if json_out is not None:
        result.save(json_out)
        console.print(f"wrote {json_out}")
