"""Writing a report folder: report.json and its renderings, atomically as a whole.

``render_files(report, folder)`` writes ``report.json``, ``report.html``, ``report.md`` and
``model_explorer/*.json`` (each selectable) into a folder. ``staged(out_dir)`` is the context
a whole report folder is built in: a staging folder beside ``out_dir`` that replaces it only
when everything was written, so an interrupted run leaves no partial folder (an earlier
report folder stays as it was).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qprobe import serde
from qprobe.errors import InputError
from qprobe.fileio import atomic_write_text
from qprobe.report.bundle import SCHEMA as BUNDLE_SCHEMA
from qprobe.report.document import Report
from qprobe.report.html import render_html
from qprobe.report.markdown import render_markdown
from qprobe.report.model_explorer import FOLDER, write_overlays

REPORT_JSON = "report.json"


def render_files(report: Report, folder: Path, *, json: bool = True, html: bool = True, md: bool = True,
                 model_explorer: bool = True) -> list[Path]:
    """Write the chosen renderings of ``report`` into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    if json:
        report.save(folder / REPORT_JSON)
        out.append(folder / REPORT_JSON)
    for wanted, name, render in ((html, "report.html", render_html), (md, "report.md", render_markdown)):
        if wanted:
            atomic_write_text(folder / name, render(report))
            out.append(folder / name)
    if model_explorer:
        out += write_overlays(report, folder / FOLDER)
    return out


def _is_bundle(path: Path) -> bool:
    try:
        return path.is_dir() and serde.load(path / "metrics.json").get("schema") == BUNDLE_SCHEMA
    except serde.SchemaError:
        return False


def check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a folder that is not qprobe's: an earlier report, repro bundles only, or empty
    (anything else may be the user's files)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a folder; pick another -o")
    if not out_dir.is_dir() or (out_dir / REPORT_JSON).is_file():
        return
    if not all(_is_bundle(p) for p in out_dir.iterdir()):
        raise InputError(f"{out_dir} is not empty and holds no {REPORT_JSON}: it is not an earlier report; "
                         "pick another -o or empty it")


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A staging folder that becomes ``out_dir`` when the block ends without an error."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; a report folder is an ordinary one
    try:
        yield stage
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
        os.replace(stage, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def find_report(path: Path) -> Path:
    """The report.json of ``path`` (a report folder or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / REPORT_JSON
    if not p.is_file():
        raise InputError(f"{path} is neither a report folder nor a report.json; pass what `qprobe diagnose -o` wrote")
    return p


def write_html(path: Path, report: Report) -> None:
    """One report as a single HTML file."""
    atomic_write_text(Path(path), render_html(report))
