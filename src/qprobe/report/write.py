"""Writing a report folder: report.json and its renderings, atomically as a whole.

``render_files(report, folder)`` writes ``report.json``, ``report.html``, ``report.md`` and
``model_explorer/*.json`` (each selectable) into a folder. ``staged(out_dir)`` is the context
a whole report folder is built in: a staging folder beside ``out_dir`` that replaces it only
when everything was written, so an interrupted run leaves no partial folder (an earlier
report folder stays as it was).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qprobe import serde
from qprobe.errors import InputError
from qprobe.fileio import atomic_write_text, staged_dir
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


def replaceable(out_dir: Path) -> bool:
    """True when ``out_dir`` may be replaced without ``--force``: absent, empty, an earlier report, or
    repro bundles only."""
    if not out_dir.is_dir():
        return not out_dir.exists()
    return (out_dir / REPORT_JSON).is_file() or all(_is_bundle(p) for p in out_dir.iterdir())


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
def staged(out_dir: Path, *, force: bool = False) -> Iterator[Path]:
    """A staging folder that becomes ``out_dir`` when the block ends without an error (``force``: even
    when ``out_dir`` holds something else than an earlier report)."""
    if not (force and Path(out_dir).is_dir()):
        check_out_dir(Path(out_dir))
    with staged_dir(Path(out_dir)) as stage:
        yield stage


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
