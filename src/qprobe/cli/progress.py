"""The live display of ``qprobe diagnose``: each stage, its target runs and elapsed time.

On a terminal a rich table refreshes in place; otherwise (logs, CI, pipes) one plain line is
printed per stage when it ends. ``run_progress`` shows localize's target runs as they happen, and
``Ticker`` prints compare's progress as plain lines when stdout is not a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from qprobe.localize import RunEvent
from qprobe.report.diagnose import DONE, STAGES, StageRecord

_STYLE = {DONE: "green", "skipped": "dim", "unavailable": "yellow", "failed": "red"}


@dataclass
class _Row:
    name: str
    status: str = "waiting"
    message: str = ""
    started: float | None = None
    runs: Callable[[], int] | None = None
    record: StageRecord | None = None


@dataclass
class StageDisplay:
    console: Console
    rows: dict[str, _Row] = field(default_factory=lambda: {n: _Row(n) for n in STAGES})
    live: Live | None = None

    def __enter__(self) -> StageDisplay:
        if self.console.is_terminal:
            self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.__exit__(t, e, tb)

    def stage_started(self, name: str, runs: Callable[[], int]) -> None:
        row = self.rows.setdefault(name, _Row(name))
        row.status, row.started, row.runs = "running", time.monotonic(), runs

    def stage_message(self, name: str, message: str) -> None:
        self.rows.setdefault(name, _Row(name)).message = message

    def stage_finished(self, record: StageRecord) -> None:
        row = self.rows.setdefault(record.name, _Row(record.name))
        row.status, row.record, row.message = record.status, record, record.note
        if self.live is None:
            runs = "" if record.target_runs is None else f", {record.target_runs} target runs"
            self.console.print(f"{record.name}: {record.status}{runs}, {record.seconds:.1f} s"
                               + (f": {record.note}" if record.note else ""), highlight=False, soft_wrap=True)

    def __rich__(self) -> Table:
        t = Table(title="qprobe diagnose", title_justify="left", expand=False)
        for col in ("stage", "status", "target runs", "elapsed"):
            t.add_column(col, no_wrap=True)
        t.add_column("", no_wrap=True, overflow="ellipsis", max_width=72)
        for row in self.rows.values():
            rec = row.record
            runs = rec.target_runs if rec else (row.runs() if row.runs else None)
            secs = rec.seconds if rec else (time.monotonic() - row.started if row.started else None)
            status: Text | Spinner = (Spinner("dots", text=Text("running", style="bold"))
                                      if row.status == "running"
                                      else Text(row.status, style=_STYLE.get(row.status, "")))
            t.add_row(row.name, status, "" if runs is None else str(runs), "" if secs is None else f"{secs:.1f} s",
                      Text(row.message, style="dim"))
        return t


@contextmanager
def run_progress(console: Console, label: str) -> Iterator[Callable[[RunEvent], None]]:
    """A sink for localize's ``RunEvent``: on a terminal a status line that follows each target run;
    otherwise (logs, CI) one plain line as each run starts, so the log shows life."""
    if not console.is_terminal:
        def plain(e: RunEvent) -> None:
            if not e.done:
                console.print(e.line(), highlight=False, soft_wrap=True)
        yield plain
        return
    with console.status(label) as status:
        def live(e: RunEvent) -> None:
            status.update(e.line())
        yield live


class Ticker:
    """Plain progress lines for a non-terminal: the first update, then at most one every ``every`` s,
    and the last (``done == total``)."""

    def __init__(self, console: Console, label: str, every: float = 10.0) -> None:
        self.console, self.label, self.every = console, label, every
        self.started = time.monotonic()
        self.last: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every and done < total:
            return
        self.last = now
        self.console.print(f"{self.label}: {done} of {total} samples ({now - self.started:.0f} s elapsed)",
                           highlight=False)
