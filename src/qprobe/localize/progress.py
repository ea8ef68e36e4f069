"""Progress of a localization: one event when each target run starts and when it ends.

``RunTicker`` wraps the runner's ``execute``: it numbers the runs (k of about n, n the chosen
strategy's estimate, which classification can exceed), says what each runs, and carries the
elapsed time and the estimate from the target's declared cost per run. Runs may go concurrently.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from qprobe.localize.state import Command, Outcome, RunCut, RunModel


@dataclass(frozen=True)
class RunEvent:
    """One target run starting (``done`` False) or ending; times in seconds."""

    k: int
    about: int
    what: str
    elapsed_s: float
    cost_per_run_s: float
    done: bool

    @property
    def remaining_s(self) -> float:
        """The declared cost of the runs still expected (0 once past the estimate)."""
        left = max(0, self.about - self.k + (0 if self.done else 1))
        return left * self.cost_per_run_s

    def line(self) -> str:
        state = "done" if self.done else "running"
        about = f"about {self.about}" if self.about >= self.k else f"more than the {self.about} estimated"
        eta = f", ~{self.remaining_s:.0f} s left at the declared {self.cost_per_run_s:g} s per run" \
            if self.cost_per_run_s > 0 else ""
        return f"target run {self.k} of {about} {state}: {self.what} ({self.elapsed_s:.0f} s elapsed{eta})"


def describe(cmd: Command) -> str:
    """What one command runs, in a few words."""
    if isinstance(cmd, RunModel):
        what = f"the model with {len(cmd.probes)} tensors probed" if cmd.probes else "the model as deployed"
    elif isinstance(cmd, RunCut):
        parts = [f"{len(cmd.isolate)} op(s) isolated"] if cmd.isolate else []
        parts += [f"{len(cmd.groups)} group(s) isolated"] if cmd.groups else []
        parts += [f"a prefix cut ending at {len(cmd.prefix)} tensor(s)"] if cmd.prefix else []
        what = "a cut: " + ", ".join(parts or ["nothing"])
    else:
        what = type(cmd).__name__
    purpose = getattr(cmd, "purpose", "")
    return f"{what} ({purpose})" if purpose else what


class RunTicker:
    def __init__(self, sink: Callable[[RunEvent], None], about: float, cost_per_run_s: float) -> None:
        self.sink, self.cost = sink, cost_per_run_s
        self.about = 0 if math.isinf(about) else int(about)
        self.started = time.monotonic()
        self.count = 0
        self.lock = threading.Lock()

    def wrap(self, execute: Callable[[Command], Outcome]) -> Callable[[Command], Outcome]:
        def run(cmd: Command) -> Outcome:
            with self.lock:
                self.count += 1
                k = self.count
            what = describe(cmd)
            self._emit(k, what, done=False)
            out = execute(cmd)
            self._emit(k, what, done=True)
            return out
        return run

    def _emit(self, k: int, what: str, *, done: bool) -> None:
        self.sink(RunEvent(k, self.about, what, time.monotonic() - self.started, self.cost, done))
