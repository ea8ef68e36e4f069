"""``qprobe stedgeai-run ...``: the ST Edge AI adapter as a subcommand (see docs/on-your-board.md).

Usable as a command target:
``command:qprobe stedgeai-run --model {model} --inputs {inputs} --outputs {outputs} --workdir {workdir}``.
The options are the adapter's own (argparse); ``--help`` prints them.
"""

from __future__ import annotations

import typer

from qprobe.backends.stedgeai import main as adapter_main

PROG = "qprobe stedgeai-run"


def stedgeai_run(ctx: typer.Context) -> None:
    """Run stedgeai generate + validate --mode target on a model and write outputs.npz
    (`qprobe stedgeai-run --help` lists the options)."""
    args = ["--help" if a == "--help-adapter" else a for a in ctx.args]
    raise typer.Exit(adapter_main(args, PROG))
