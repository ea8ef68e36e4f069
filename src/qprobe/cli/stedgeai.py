"""``qprobe stedgeai-run ...``: the ST Edge AI adapter as a subcommand (see docs/on-your-board.md).

Usable as a command target:
``command:qprobe stedgeai-run --model {model} --inputs {inputs} --outputs {outputs} --workdir {workdir}``.
"""

from __future__ import annotations

import typer

from qprobe.backends.stedgeai import main as adapter_main


def stedgeai_run(ctx: typer.Context) -> None:
    """Run stedgeai generate + validate --mode target on a model and write outputs.npz
    (all options are the adapter's; `qprobe stedgeai-run --help-adapter` lists them)."""
    args = list(ctx.args)
    if "--help-adapter" in args:
        args = ["--help"]
    raise typer.Exit(adapter_main(args))
