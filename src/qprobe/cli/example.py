"""``qprobe example tcn -o DIR``: build the bundled example model from scratch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.checks import ForceOpt, check_outputs
from qprobe.cli.common import EXAMPLES, console
from qprobe.errors import InputError
from qprobe.fileio import staged_dir

# measured on a loaded 2-core machine: 43-107 s (training dominates)
HONEST_TIME = "1-2 minutes on 2 cores"


def example(
    name: Annotated[str, typer.Argument(help="Which example: tcn.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the model and data into.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic data and weights.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Build an example model deterministically and offline (the motivating case's TCN); with the
    default seed it writes the same model and the same 64 validation windows `--example tcn` uses."""
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    check_outputs(dirs={"-o": out}, force=force)
    from qprobe.examples.tcn import PACKAGED_INPUTS, build_tcn_example

    started = time.monotonic()
    with console.status(f"building the TCN example: synthetic data, training, quantization (takes {HONEST_TIME})"), \
            staged_dir(out) as stage:
        ex = build_tcn_example(stage, seed=seed, n_inputs=PACKAGED_INPUTS)
    console.print(ex.summary().replace(str(stage), str(out)) if hasattr(ex, "summary") else ex, highlight=False)
    console.print(f"built in {time.monotonic() - started:.0f} s; {PACKAGED_INPUTS} validation windows in "
                  f"{out}/tcn_inputs.npz" + (" (the same as --example tcn)" if seed == 0 else ""), highlight=False)
