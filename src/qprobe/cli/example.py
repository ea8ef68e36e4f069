"""``qprobe example tcn -o DIR``: copy the bundled example (model, inputs, data) into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.checks import ForceOpt, check_outputs
from qprobe.cli.common import EXAMPLES, console
from qprobe.errors import InputError
from qprobe.fileio import staged_dir

REBUILD = "python tools/regenerate_example.py --out DIR --seed N (from a source checkout; 1-2 minutes on 2 cores)"


def example(
    name: Annotated[str, typer.Argument(help="Which example: tcn.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the model and data into.")],
    seed: Annotated[int, typer.Option("--seed", help="Only 0, the shipped build; other seeds: " + REBUILD)] = 0,
    force: ForceOpt = False,
) -> None:
    """Write the example model (the motivating case's TCN) and its data into a folder: the same
    files, and the same 64 validation windows, that `--example tcn` uses."""
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    if seed != 0:
        raise InputError(f"the shipped example is seed 0; build seed {seed} with {REBUILD}")
    check_outputs(dirs={"-o": out}, force=force)
    from qprobe.examples.tcn import PACKAGED_INPUTS, copy_example

    with staged_dir(out) as stage:
        ex = copy_example(stage)
    console.print(ex.summary().replace(str(stage), str(out)), highlight=False)
    console.print(f"{PACKAGED_INPUTS} validation windows in {out}/tcn_inputs.npz (the same as --example tcn); "
                  f"to rebuild from scratch: {REBUILD}", highlight=False)
