"""``qprobe localize``: the op that introduces the target's error, in few target runs; exit 0 when done."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import onnx_ir as ir
import typer
from rich.table import Table
from rich.text import Text

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
    console,
    resolve_run,
)
from qprobe.compare import TensorComparison, parse_policy
from qprobe.errors import InputError
from qprobe.localize import STRATEGIES, Divergence, Localization
from qprobe.localize import localize as run_localize
from qprobe.localize.culprit import culprit_cut
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.report.bundle import Repro, write_bundle

StrategyOpt = Annotated[str, typer.Option("--strategy", help=f"{' | '.join(STRATEGIES)}.")]
LocTargetOpt = Annotated[str, typer.Option("--target", help="Target backend spec: engine:PROFILE, command:TEMPLATE, recorded:PATH, ort, ort-fused.")]
OpsOpt = Annotated[str | None, typer.Option("--ops", help="isolate: only these ops (comma-separated node names).")]
BundleOpt = Annotated[Path | None, typer.Option("--bundle", help="Write a repro bundle of the culprit into this folder.")]
TolOpt = Annotated[str | None, typer.Option("--tol", help="Tolerance, e.g. cos=0.99,bias=0.5,max=2 (bias and max in LSB).")]
TolTensorOpt = Annotated[list[str] | None, typer.Option("--tol-tensor", help="Per-tensor tolerance TENSOR:cos=...,bias=... (repeatable).")]
ClassifyOpt = Annotated[bool, typer.Option("--classify/--no-classify", help="Also isolate the failing ops after the culprit (carrier or not).")]

_STYLE = {"exact": "green", "pass": "cyan", "fail": "bold red"}
_ROLE_STYLE = {"culprit": "bold red", "introduces": "red", "carrier": "yellow", "unconfirmed": "bold yellow"}


def localize(
    model: ModelArg = None,
    example: ExampleOpt = None,
    ref: RefOpt = "ort-fused",
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
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when an op introducing an error is found (for CI); default: exit 0 when localization completes.")] = False,
) -> None:
    """Find the op that introduces the error (not one that only carries it), counting target runs.

    The reference defaults to ort-fused: onnxruntime's integer QDQ kernels, which the engine's
    `onnxruntime` profile reproduces bit for bit, so every op the target computes like
    onnxruntime compares exact and only real defects remain.
    """
    if not target:
        raise InputError("missing --target: the backend to localize the error on, e.g. --target engine:arith16-wrap")
    run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
    m, name = run.model, run.name
    op_list = [o.strip() for o in ops.split(",") if o.strip()] if ops else None
    with console.status("localizing (each target run: prepare the model, run every sample)"):
        loc = run_localize(m, run.ref, run.target, run.inputs, strategy=strategy, ops=op_list, classify=classify,
                           policy=parse_policy(tol, tol_tensor), batch_size=batch_size, model_name=name)
    div = loc.divergence
    console.print(f"[bold]strategy[/]: {div.strategy} ({div.reason})", highlight=False)
    console.print(divergence_table(div))
    for note in div.notes:
        console.print(f"note: {note}", highlight=False)
    for line in summary(div, build_quant_index(m)):
        console.print(line, highlight=False)
    if json_out is not None:
        div.save(json_out)
        console.print(f"wrote {json_out}")
    if bundle is not None:
        _bundle(bundle, m, loc, ref, target, name, target_opt)
    if exit_code and div.culprit is not None:
        raise typer.Exit(1)


def _bundle(path: Path, m: ir.Model, loc: Localization, ref: str, target: str, name: str,
            target_opt: list[str] | None) -> None:
    div = loc.divergence
    files = write_bundle(path, Repro(
        title=div.verdict(), cut=culprit_cut(m, div, loc.isolated), ref=ref, target=target, source=name,
        command=shlex.join(["qprobe", *sys.argv[1:]]), target_options=tuple(target_opt or ()), divergence=div,
    ))
    console.print(f"wrote the repro bundle {path}/ ({', '.join(p.name for p in files)})")


def _cells(r: TensorComparison | None) -> list[Text | str]:
    if r is None:
        return ["", "", ""]
    lsb = r.lsb
    bias = "-" if lsb is None else f"{lsb.mean_delta_lsb:+.2f}"
    return [f"{r.st.cos:.4f}" if r.st.cos == r.st.cos else "-", bias, Text(r.verdict, style=_STYLE.get(r.verdict, ""))]


def divergence_table(div: Divergence) -> Table:
    t = Table(title=f"{div.ref} (reference) vs {div.target} (target), {div.num_samples} samples: "
              "accumulated (whole model) and isolated (op alone, reference inputs)", title_justify="left")
    for col in ("tensor", "op", "acc cos", "acc mean Δ LSB", "acc", "iso cos", "iso mean Δ LSB", "iso", "role"):
        t.add_column(col)
    roles = {f.op: f.role for f in ([div.culprit] if div.culprit else []) + list(div.later)}
    acc = {r.name: r for r in div.tensors}
    iso = {r.name: r for r in div.isolated}
    for name in dict.fromkeys([*acc, *iso]):
        r = acc.get(name) or iso[name]
        role = roles.get(r.producer, "")
        t.add_row(name, f"{r.producer} ({r.op_type})", *_cells(acc.get(name)), *_cells(iso.get(name)),
                  Text(role, style=_ROLE_STYLE.get(role, "")))
    return t


def summary(div: Divergence, index: QuantIndex) -> list[str]:
    lines = [("DIVERGENCE: " if div.found else "") + div.verdict()]
    c = div.culprit
    if c is not None:
        for r in div.culprit_inputs:
            lines.append(f"  input {r.name}: cos {r.st.cos:.5f}, {r.verdict} ({r.reason}) on the target")
        ratios = index.scale_ratios(index.op(c.op)) if c.op in {o.name for o in index.ops} else None
        if ratios:
            lines.append("  operand-to-output scale ratios: " + ", ".join(f"{x:.3f}" for x in ratios))
    carriers, introducers = div.carriers(), div.introducers()
    if carriers:
        lines.append(f"carriers (fine in isolation, error from upstream): {len(carriers)}: {', '.join(carriers)}")
    if introducers:
        lines.append(f"also introduce their own error: {', '.join(introducers)}")
    unclassified = [f.op for f in div.later if f.role not in ("carrier", "introduces")]
    if unclassified:
        lines.append(f"not classified: {', '.join(unclassified)}")
    budget = "" if div.budget is None else f" (bisect budget ceil(log2 N) + 2 = {div.budget})"
    lines.append(f"target runs used: {div.target_runs}{budget}; reference runs: {div.reference_runs}")
    return lines
