"""The console entry point (``qprobe`` and ``python -m qprobe``).

Ctrl-C at any moment ends the same way: one line on stderr, exit code 130, no traceback. While
the heavy modules load (numpy, onnx, onnxruntime, the CLI), SIGINT is deferred: an interrupt
that lands inside an extension module's initialisation can leave it half-initialised (we saw a
segfault), so it is honoured right after the imports instead. A user error (``QprobeError``, a
bad option) is one line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

EXIT_INTERRUPTED = 130
_HEAVY = ("numpy", "onnx", "onnx_ir", "rich", "typer", "qprobe.backends.onnxruntime", "qprobe.cli.main")


class _Deferred:
    def __init__(self) -> None:
        self.hit = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.hit = True


def main() -> None:
    deferred = _Deferred()
    signal.signal(signal.SIGINT, deferred)
    try:
        for name in _HEAVY:
            importlib.import_module(name)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if deferred.hit:
            raise KeyboardInterrupt
        code = importlib.import_module("qprobe.cli.main").run(sys.argv[1:])
    except KeyboardInterrupt:
        _interrupted()
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _interrupted() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while reporting changes nothing
    from qprobe.backends.command import run_log

    executed, cached = run_log()
    runs = f"{executed} target run(s) done and cached" if executed else "no target run done"
    extra = f", {cached} taken from the cache" if cached else ""
    print(f"interrupted: {runs}{extra}; rerun the same command to resume", file=sys.stderr, flush=True)
