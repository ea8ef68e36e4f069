"""``qprobe compare``: two backends, tensor by tensor; exit 0 if all pass, 1 if any fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from qprobe.cli.checks import ForceOpt, check_outputs, check_tolerance_names
from qprobe.cli.common import (
    AutoBatchOpt,
    ClusterOpt,
    ExampleOpt,
    InputsOpt,
    JsonOpt,
    ModelArg,
    RandomModeOpt,
    RandomOpt,
    RefKv,
    RefOpt,
    RunSetup,
    SeedOpt,
    TargetKv,
    TargetOpt,
    TolOpt,
    TolTensorOpt,
    WideOpt,
    console,
    example_paths,
    parse_bytes,
    parse_kv,
    progress_bar,
    resolve_model,
    resolve_run,
    use_wide,
)
from qprobe.compare import (
    Comparison,
    InputRequest,
    TolerancePolicy,
    compare_backends,
    compare_saved,
    parse_policy,
)
from qprobe.compare.budget import DEFAULT_MEMORY_BUDGET
from qprobe.errors import InputError
from qprobe.execute import compare_sharded
from qprobe.fileio import staged_dir
from qprobe.model.quant import build_quant_index
from qprobe.report.build import Invocation, build_report
from qprobe.report.terminal import comparison_summary, comparison_table
from qprobe.report.write import write_html
from qprobe.tensors import TraceFolder

ProbeOpt = Annotated[str, typer.Option("--probe", help="outputs | op-outputs | all | T1,T2,... (tensor names).")]
ClassifierOpt = Annotated[bool, typer.Option("--classifier",
                                             help="Report accuracy on outputs (like stedgeai --classifier).")]
MemoryBudgetOpt = Annotated[str | None, typer.Option(
    "--memory-budget", show_default=False,
    help="Peak memory to aim for when choosing the batch size: 1GiB, 512MiB, 2e9 "
         "(default 1GiB; with --cluster, per worker: half its memory limit).")]
HtmlOpt = Annotated[Path | None, typer.Option(
    "--html", help="Also write the comparison as a self-contained HTML page with the error chart.")]
SaveTracesOpt = Annotated[Path | None, typer.Option(
    "--save-traces",
    help="Save every batch's reference and target Traces (JSON + .npz) into this folder; "
         "`--ref traces:DIR --target traces:DIR` compares them again.")]
TRACES = "traces:"


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
    classifier: ClassifierOpt = False,
    batch_size: AutoBatchOpt = None,
    memory_budget: MemoryBudgetOpt = None,
    json_out: JsonOpt = None,
    html_out: HtmlOpt = None,
    save_traces: SaveTracesOpt = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    cluster: ClusterOpt = None,
) -> None:
    """Compare a reference and a target backend tensor by tensor, with ST's metrics and LSB metrics.

    The verdict is about the model as deployed: when probing changes a backend's final outputs,
    the unprobed run's outputs decide (and the probed tensors are marked untrusted).
    """
    use_wide(wide)
    check_outputs({"--json": json_out, "--html": html_out}, {"--save-traces": save_traces}, force=force,
                  inputs=(model, inputs))
    policy = parse_policy(tol, tol_tensor)
    budget = parse_bytes(memory_budget) if memory_budget is not None else None
    if ref.startswith(TRACES) or target.startswith(TRACES):
        if save_traces is not None:
            raise InputError("--save-traces saves live runs; with traces:DIR on both sides they are saved already")
        cmp = _saved(model, example, ref, target, ref_opt, target_opt, policy)
    else:
        run = resolve_run(model, example, ref, ref_opt, target, target_opt, inputs, random, seed, random_mode)
        check_tolerance_names(policy, run.model)
        request = InputRequest(inputs, random, seed, random_mode, example_paths(example)[1] if example else None)
        kw: dict[str, Any] = {"probe": probe, "policy": policy, "batch_size": batch_size, "memory_budget": budget,
                              "classifier": True if classifier else None, "model_name": run.name}
        cmp = _live(run, request, cluster, save_traces, kw)
    _show(cmp)
    _write(cmp, json_out, html_out, Invocation(f"--example {example}" if example else str(model), ref, target,
                                               tuple(target_opt or ())), model, example)
    raise typer.Exit(0 if cmp.passed else 1)


def _show(cmp: Comparison) -> None:
    console.print(comparison_table(cmp))
    for line in comparison_summary(cmp):
        console.print(line, highlight=False)


def _write(cmp: Comparison, json_out: Path | None, html_out: Path | None, invocation: Invocation,
           model: Path | None, example: str | None) -> None:
    if json_out is not None:
        cmp.save(json_out)
        console.print(f"wrote {json_out}")
    if html_out is not None:
        m, name, _ = resolve_model(model, example)
        write_html(html_out, build_report("compare", m, name, comparison=cmp.to_json(), invocation=invocation))
        console.print(f"wrote {html_out}")


@contextmanager
def _traces(path: Path | None) -> Iterator[TraceFolder | None]:
    """The --save-traces folder, written staged: it appears whole when the comparison ends."""
    if path is None:
        yield None
        return
    with staged_dir(path) as stage:
        yield TraceFolder(stage)


def _live(run: RunSetup, request: InputRequest, cluster: str | None, save_traces: Path | None,
          kw: dict[str, Any]) -> Comparison:
    """Both backends run here, or sharded over ``cluster``."""
    with progress_bar("comparing") as update:
        if cluster is None:
            kw["memory_budget"] = kw["memory_budget"] or DEFAULT_MEMORY_BUDGET
            with _traces(save_traces) as folder:
                return compare_backends(run.model, run.ref, run.target, run.inputs, progress=update,
                                        save_traces=folder, **kw)
        if save_traces is not None:
            raise InputError("--save-traces gathers every tensor on this machine; drop it or --cluster")
        return compare_sharded(cluster, run.model, run.ref, run.target, request, run.inputs, progress=update, **kw)


def _saved(
    model: Path | None, example: str | None, ref: str, target: str, ref_opt: list[str] | None,
    target_opt: list[str] | None, policy: TolerancePolicy,
) -> Comparison:
    """Both sides replayed from folders written by ``--save-traces`` (MODEL only labels the rows)."""
    if not (ref.startswith(TRACES) and target.startswith(TRACES)):
        raise InputError("traces:DIR replays saved Traces and needs both sides: --ref traces:DIR --target traces:DIR "
                         "(to compare saved tensors with a live backend, use recorded:FILE.npz)")
    roles = (parse_kv(ref_opt, "--ref-opt").get("role", "ref"),
             parse_kv(target_opt, "--target-opt").get("role", "target"))
    folders = []
    for spec in (ref, target):
        path = Path(spec[len(TRACES):])
        if not path.is_dir():
            raise InputError(f"{spec}: {str(path)!r} is not a folder of saved traces (write one with --save-traces)")
        folders.append(TraceFolder(path))
    index, name = None, ""
    if model is not None or example is not None:
        m, name, _ = resolve_model(model, example)
        index = build_quant_index(m)
    return compare_saved(folders[0], folders[1], policy, roles=(roles[0], roles[1]), index=index, model=name)
