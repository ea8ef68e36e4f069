"""A fake board for the cluster tests: ``mutating_target`` (onnxruntime with one node's result
scaled), made slow and observable.

    python fake_board.py --log LOG --sleep S --unplug FLAG --model M --inputs I --outputs O [--node ...]

Appends ``start SHA T PID`` and ``end SHA T PID`` to LOG (SHA: the first 16 hex digits of the
model file's sha256, T: wall-clock seconds), sleeping S seconds in between; while the file FLAG
exists the board is "unplugged": the run fails with exit 75 before anything is logged.

``--until-overlap S`` instead waits (at most S seconds) until another board's run is in progress
at the same time, or one already was: runs that a scheduler starts together overlap however slow
the machine is, and runs it starts one after the other do not (no clock to race). The first run
logged (localize's run of the model as deployed, alone by design) does not wait.
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
    ap.add_argument("--until-overlap", type=float, default=0.0)
    a, rest = ap.parse_known_args()
    if a.unplug and Path(a.unplug).exists():
        print("fake_board: unplugged", file=sys.stderr)
        return 75
    model = rest[rest.index("--model") + 1]
    sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()[:16]
    _note(a.log, "start", sha)
    running = Path(a.log).with_suffix(".running")
    me = running / str(os.getpid())
    first = sum(line.startswith("end ") for line in Path(a.log).read_text().splitlines()) == 0
    if a.until_overlap and not first:  # the first run (the model as deployed) is alone by design
        _wait_for_company(running, me, a.until_overlap)
    else:
        time.sleep(a.sleep)
    rc = mutating_target.main(rest)
    _note(a.log, "end", sha)
    me.unlink(missing_ok=True)
    return rc


def _wait_for_company(running: Path, me: Path, limit: float) -> None:
    """Mark this run as in progress; return once another run is too (or an overlap was seen before)."""
    running.mkdir(exist_ok=True)
    me.touch()
    seen = running / "overlapped"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not seen.exists():
        if any(p.name not in (me.name, seen.name) for p in running.iterdir()):
            seen.touch()
            return
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
