"""A fake board for the cluster tests: ``mutating_target`` (onnxruntime with one node's result
scaled), made slow and observable.

    python fake_board.py --log LOG --sleep S --unplug FLAG --model M --inputs I --outputs O [--node ...]

Appends ``start SHA T PID`` and ``end SHA T PID`` to LOG (SHA: the first 16 hex digits of the
model file's sha256, T: wall-clock seconds), sleeping S seconds in between; while the file FLAG
exists the board is "unplugged": the run fails with exit 75 before anything is logged.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "targets"))
import mutating_target


def _note(log: str, what: str, sha: str) -> None:
    with open(log, "a") as fh:  # one short line per write: appends do not interleave
        fh.write(f"{what} {sha} {time.time():.6f} {os.getpid()}\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--sleep", type=float, default=1.0)
    ap.add_argument("--unplug", default="")
    a, rest = ap.parse_known_args()
    if a.unplug and Path(a.unplug).exists():
        print("fake_board: unplugged", file=sys.stderr)
        return 75
    model = rest[rest.index("--model") + 1]
    sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()[:16]
    _note(a.log, "start", sha)
    time.sleep(a.sleep)
    rc = mutating_target.main(rest)
    _note(a.log, "end", sha)
    return rc


if __name__ == "__main__":
    sys.exit(main())
