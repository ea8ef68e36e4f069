"""``qprobe report``: re-render a report folder (or a report.json) from report.json alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qprobe.cli.common import console
from qprobe.report.document import Report
from qprobe.report.model_explorer import FOLDER, open_model_explorer
from qprobe.report.write import find_report, render_files


def report(
    path: Annotated[Path, typer.Argument(help="A report folder (from `qprobe diagnose -o`) or its report.json.")],
    html: Annotated[bool, typer.Option("--html", help="Write report.html.")] = False,
    md: Annotated[bool, typer.Option("--md", help="Write report.md.")] = False,
    model_explorer: Annotated[bool, typer.Option("--model-explorer", help="Write model_explorer/*.json.")] = False,
    open_explorer: Annotated[bool, typer.Option("--open-model-explorer",
                                                help="Start Model Explorer on localhost with the model and the "
                                                     "overlays (needs qprobe[explorer]).")] = False,
) -> None:
    """Re-render report.html, report.md and the Model Explorer overlays from report.json (all three by default)."""
    source = find_report(path)
    doc = Report.load(source)
    everything = not (html or md or model_explorer)
    written = render_files(doc, source.parent, json=False, html=html or everything, md=md or everything,
                           model_explorer=model_explorer or everything or open_explorer)
    for p in written:
        console.print(f"wrote {p}", highlight=False)
    if open_explorer:
        overlays = sorted((source.parent / FOLDER).glob("*.json"))
        console.print("starting Model Explorer on localhost (Ctrl-C stops it)", highlight=False)
        open_model_explorer(doc, source.parent, overlays)
