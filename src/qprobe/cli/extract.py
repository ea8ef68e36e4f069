"""``qprobe extract``: cut a subgraph into a standalone model (QDQ cuts at int8 codes), optionally a repro bundle."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import onnx_ir as ir
import typer

from qprobe.cli.checks import ForceOpt, check_outputs
from qprobe.cli.common import (
    AutoRefOpt,
    BatchOpt,
    ExampleOpt,
    ModelArg,
    RandomModeOpt,
    RandomOpt,
    RefKv,
    SeedOpt,
    TargetKv,
    console,
    default_reference,
    make_backend,
    resolve_model,
)
from qprobe.compare.cut import run_cut
from qprobe.compare.inputs import InputRequest, resolve_inputs
from qprobe.errors import InputError
from qprobe.model.extract import extract_subgraph, quant_boundary
from qprobe.model.loader import save_model
from qprobe.report.bundle import Repro, write_bundle

NamesIn = Annotated[str, typer.Option("--inputs", help="Cut inputs: comma-separated tensor names.")]
NamesOut = Annotated[str, typer.Option("--outputs", help="Cut outputs: comma-separated tensor names.")]
OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="Write the cut model to this .onnx file.")]
FloatOpt = Annotated[bool, typer.Option("--float-boundary",
                                        help="Cut exactly at the named tensors, even float ones inside QDQ groups.")]
SamplesOpt = Annotated[Path | None, typer.Option("--samples",
                                                 help="Bundle: .npz with one array per *model* input (samples on axis "
                                                      "0).")]
TargetOpt = Annotated[str | None, typer.Option("--target",
                                               help="Bundle: also run the cut on this target (observed.npz, metrics).")]
BundleOpt = Annotated[Path | None, typer.Option("--bundle",
                                                help="Write a repro bundle (cut, inputs, expected, observed, README) "
                                                     "here.")]


def extract(
    model: ModelArg = None,
    example: ExampleOpt = None,
    inputs: NamesIn = "",
    outputs: NamesOut = "",
    out: OutOpt = None,
    float_boundary: FloatOpt = False,
    bundle: BundleOpt = None,
    ref: AutoRefOpt = None,
    target: TargetOpt = None,
    ref_opt: RefKv = None,
    target_opt: TargetKv = None,
    samples: SamplesOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = 42,
    random_mode: RandomModeOpt = "uniform",
    batch_size: BatchOpt = 64,
    force: ForceOpt = False,
) -> None:
    """Cut the subgraph from --inputs to --outputs into a valid, runnable model; names are kept.

    In a QDQ model the cut keeps the quantization boundary: a DequantizeLinear output becomes the
    int8 codes it reads, and a float tensor that a QuantizeLinear consumes becomes its int8 codes,
    so the cut takes and returns codes (the form stedgeai --cut-input-tensors/--cut-output-tensors
    and boards handle). --float-boundary cuts exactly at the named tensors instead.
    """
    if out is None and bundle is None:
        raise InputError("nothing to write: give -o CUT.onnx and/or --bundle DIR")
    check_outputs({"-o": out}, {"--bundle": bundle}, force=force, inputs=(model, samples))
    if bundle is None and (target or samples or random is not None):
        raise InputError("--target, --samples and --random feed the repro bundle; add --bundle DIR (or drop them)")
    m, name, example_inputs = resolve_model(model, example)
    ins, outs = _boundary(m, inputs, outputs, float_boundary)
    cut = extract_subgraph(m, ins, outs)
    if out is not None:
        save_model(cut, out)
        console.print(f"wrote {out}: {len(list(cut.graph))} nodes; inputs {', '.join(ins)}; outputs {', '.join(outs)}")
    if bundle is None:
        return
    ref = ref or _default_ref(m)
    ref_b = make_backend(ref, ref_opt, "--ref-opt")
    tgt_b = make_backend(target, target_opt, "--target-opt") if target else None
    samp = resolve_inputs(m, InputRequest(samples, random, seed, random_mode, example_inputs), [ref_b])
    run = run_cut(m, ins, outs, ref_b, tgt_b, samp, batch_size=batch_size)
    title = f"cut {', '.join(ins)} -> {', '.join(outs)} of {name}"
    files = write_bundle(bundle, Repro(title, run, ref, target, name, shlex.join(["qprobe", *sys.argv[1:]]),
                                       tuple(target_opt or ())))
    console.print(f"wrote the repro bundle {bundle}/ ({', '.join(p.name for p in files)})")


def _boundary(m: ir.Model, inputs: str, outputs: str, float_boundary: bool) -> tuple[list[str], list[str]]:
    """The cut's inputs and outputs, moved to the int8 codes at QDQ boundaries unless asked not to."""
    ins = [t.strip() for t in inputs.split(",") if t.strip()]
    outs = [t.strip() for t in outputs.split(",") if t.strip()]
    if float_boundary:
        return ins, outs
    new_ins, new_outs = quant_boundary(m, ins, outs)
    for old, new in zip([*ins, *outs], [*new_ins, *new_outs], strict=False):
        if old != new:
            console.print(f"{old} -> {new} (the int8 codes at this QDQ boundary)", highlight=False)
    return new_ins, new_outs


def _default_ref(m: ir.Model) -> str:
    ref, why = default_reference(m)
    if why:
        console.print(f"note: {why}", highlight=False)
    return ref
