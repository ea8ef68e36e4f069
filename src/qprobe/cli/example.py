"""``qprobe example tcn -o DIR``: build the bundled example model from scratch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.common import EXAMPLES, console
from qprobe.errors import InputError


def example(
    name: Annotated[str, typer.Argument(help="Which example: tcn.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the model and data into.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data and weights.")] = 0,
) -> None:
    """Build an example model deterministically and offline (the motivating case's TCN)."""
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    from qprobe.examples.tcn import build_tcn_example

    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory; pick another -o")
    out.mkdir(parents=True, exist_ok=True)
    with console.status("building the TCN example: synthetic data, training (~15 s), quantization"):
        ex = build_tcn_example(out, seed=seed)
    console.print(ex.summary() if hasattr(ex, "summary") else ex)
