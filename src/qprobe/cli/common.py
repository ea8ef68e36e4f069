"""Shared CLI plumbing: options, model and input resolution, progress bars, key=value parsing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import onnx_ir as ir
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qprobe.backends import Backend, create_backend
from qprobe.cli.checks import quantization_warning
from qprobe.compare.inputs import InputRequest, resolve_inputs
from qprobe.errors import InputError
from qprobe.model.inputs import InputSet
from qprobe.model.loader import load_model
from qprobe.model.patterns import float_weights_in_qdq

PIPED_WIDTH = 100  # piped output (CI logs, files): tables fit 100 columns, names wrap whole
WIDE = 1000


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=PIPED_WIDTH, soft_wrap=True)  # lines stay whole


console = _console()
err_console = _console(stderr=True)

WideOpt = Annotated[bool, typer.Option("--wide", help="Tables as wide as their content (default: fit the terminal, "
                                                      "100 columns when piped; long names wrap).")]


_NATURAL_WIDTH = console.width


def use_wide(wide: bool) -> None:
    """``--wide``: tables take the width their content needs, nothing wraps (until ``natural_width``)."""
    if wide:
        console.width = WIDE


def natural_width() -> None:
    """Back to the width of the terminal (or the piped width), after a command that used ``--wide``."""
    if console.width == WIDE:
        console.width = _NATURAL_WIDTH

EXAMPLES = ("tcn",)

ModelArg = Annotated[Path | None, typer.Argument(help="The int8 QDQ (or QOperator) ONNX model.", show_default=False)]
ExampleOpt = Annotated[str | None, typer.Option("--example", help="Use a bundled example model instead of MODEL: tcn.")]
RefOpt = Annotated[str,
                   typer.Option("--ref",
                                help="Reference backend spec: ort, ort-fused, engine:PROFILE, recorded:PATH, "
                                     "command:TEMPLATE.")]
AutoRefOpt = Annotated[str | None, typer.Option("--ref",
                                                help="Reference backend spec (default: ort-fused, onnxruntime's "
                                                     "integer kernels; ort for models with float weights inside QDQ "
                                                     "groups, which ort-fused would quantize itself).",
                                                show_default=False)]
TargetOpt = Annotated[str, typer.Option("--target", help="Target backend spec (same forms as --ref).")]
RefKv = Annotated[list[str] | None, typer.Option("--ref-opt",
                                                 help="KEY=VALUE option for the reference backend (repeatable).")]
TargetKv = Annotated[list[str] | None, typer.Option("--target-opt", "--set",
                                                    help="KEY=VALUE option for the target backend; for engine targets "
                                                         "a profile override (repeatable).")]
InputsOpt = Annotated[Path | None, typer.Option("--inputs",
                                                help=".npz with one array per model input, samples on axis 0.")]
RandomOpt = Annotated[int | None, typer.Option("--random",
                                               help="Use N random samples (like stedgeai validate: 10, seed 42).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of --random.")]
RandomModeOpt = Annotated[str, typer.Option("--random-mode",
                                            help="uniform: [0,1) like stedgeai; qrange: the input's quantized range.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Samples per batch (memory bound).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the result as versioned JSON to this file.")]


def parse_kv(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise InputError(f"{what} {item!r} is not KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def make_backend(spec: str, opts: list[str] | None, what: str) -> Backend:
    return create_backend(spec, parse_kv(opts, f"{what} option"))


def example_paths(name: str) -> tuple[Path, Path]:
    """(model, inputs) of a bundled example."""
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    from qprobe.examples.tcn import packaged_example_dir

    d = packaged_example_dir()
    return d / "tcn_int8.onnx", d / "tcn_inputs.npz"


def resolve_model(model: Path | None, example: str | None) -> tuple[ir.Model, str, Path | None]:
    """(model, display name, default inputs file) from MODEL or --example."""
    if model is not None and example is not None:
        raise InputError("give either MODEL or --example, not both")
    if example is not None:
        mpath, ipath = example_paths(example)
        return load_model(mpath), f"example:{example}", ipath
    if model is None:
        raise InputError("missing MODEL: pass an .onnx file, or --example tcn")
    return load_model(model), str(model), None


@dataclass(frozen=True)
class RunSetup:
    """What compare and localize both start from: model, its display name, backends, samples."""

    model: ir.Model
    name: str
    ref: Backend
    target: Backend
    inputs: InputSet


def resolve_run(
    model: Path | None, example: str | None, ref: str | None, ref_opt: list[str] | None, target: str,
    target_opt: list[str] | None, inputs: Path | None, random: int | None, seed: int, random_mode: str,
) -> RunSetup:
    """Model (or example), both backends and the samples, with stedgeai's default of 10 random samples.

    ``ref=None`` picks the reference that matches the deployed arithmetic (``default_reference``)."""
    m, name, example_inputs = resolve_model(model, example)
    warning = quantization_warning(m)
    if warning:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    if ref is None:
        ref, why = default_reference(m)
        if why:
            err_console.print(f"note: {why}", highlight=False, soft_wrap=True)
    ref_b = make_backend(ref, ref_opt, "--ref-opt")
    tgt_b = make_backend(target, target_opt, "--target-opt")
    for b in (ref_b, tgt_b):
        b.bind(m)
    request = InputRequest(inputs, random, seed, random_mode, example_inputs)
    return RunSetup(m, name, ref_b, tgt_b, resolve_inputs(m, request, (ref_b, tgt_b)))


def default_reference(m: ir.Model) -> tuple[str, str]:
    """(reference spec, why when it is not the usual one): ``ort-fused`` (onnxruntime's integer
    kernels, which ``engine:onnxruntime`` reproduces bit for bit), or ``ort`` when float weights sit
    inside QDQ groups: onnxruntime's optimizer quantizes those itself, so ``ort-fused`` computes
    another model than the board, OpenVINO or TFLite (docs/on-your-board.md)."""
    nodes = float_weights_in_qdq(m)
    if not nodes:
        return "ort-fused", ""
    return "ort", (f"{len(nodes)} op(s) keep float weights inside QDQ groups ({', '.join(nodes[:3])}"
                   f"{', ...' if len(nodes) > 3 else ''}); ort-fused would quantize them itself, so the reference "
                   "is ort (float weights, as deployed); pass --ref ort-fused to override")


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, shown from the first update; yields ``(done, total)``. When stdout
    is not a terminal (CI logs), plain lines instead: the first update, one every ~10 s, the last."""
    if not console.is_terminal:
        from qprobe.cli.progress import Ticker

        yield Ticker(console, label)
        return
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    )
    task = bar.add_task(label, total=None)
    started = False

    def update(done: int, total: int) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if started:
            bar.stop()


_BYTE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


def parse_bytes(text: str, what: str = "--memory-budget") -> int:
    """``"1GiB"``, ``"512MiB"``, ``"2e9"``, ``"1.5GB"`` as a positive number of bytes."""
    s = text.strip().replace(" ", "")
    num = s.rstrip("BbIiKkMmGgTt")
    unit = s[len(num):].upper()
    try:
        value = float(num) * _BYTE_UNITS[unit]
    except (KeyError, ValueError):
        value = -1.0
    if not value >= 1 or value != value or value == float("inf"):
        raise InputError(f"{what} {text!r} is not a size in bytes; write e.g. 1GiB, 512MiB or 2e9")
    return int(value)


AutoBatchOpt = Annotated[int | None, typer.Option("--batch-size", min=1,
                                                  help="Samples per batch (default: chosen from --memory-budget).",
                                                  show_default=False)]
MemoryBudgetOpt = Annotated[str, typer.Option("--memory-budget",
                                              help="Peak memory to aim for when choosing the batch size: 1GiB, 512MiB, "
                                                   "2e9.")]
TolOpt = Annotated[str | None, typer.Option("--tol",
                                            help="Tolerance, e.g. cos=0.99,bias=0.5,max=2 (bias and max in LSB).")]
TolTensorOpt = Annotated[list[str] | None, typer.Option("--tol-tensor",
                                                        help="Per-tensor tolerance TENSOR:cos=...,bias=... "
                                                             "(repeatable).")]
ClusterOpt = Annotated[str | None, typer.Option("--cluster",
                                                help="Run on a Dask cluster (pip install 'qprobe[distributed]'): "
                                                     "local:N worker processes, local:N,board=1 (each owns a board), "
                                                     "or tcp://HOST:PORT of a running scheduler; docs/cluster.md.")]
