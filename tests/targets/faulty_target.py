"""A stand-in target that fails in one chosen way, for the command backend's error tests.

    python faulty_target.py MODE --model M --inputs I --outputs O [--state FILE]

MODE: ok | crash | hang | exit | missing | malformed | pickled | nan | wrong-shape |
missing-key | flaky (fails with exit 3 on the first call that sees a fresh --state file,
then succeeds). "ok" writes correct outputs: onnxruntime on the received model.
"""

from __future__ import annotations

import sys

# first, before any heavy import: a test that kills a hung run must find this line in stderr
print(f"faulty_target: mode={sys.argv[1] if len(sys.argv) > 1 else '?'}", file=sys.stderr, flush=True)

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from mutating_target import run  # noqa: E402


def _good(model: str, inputs: str) -> dict[str, np.ndarray]:
    with np.load(inputs) as z:
        feeds = {k: z[k] for k in z.files}
    return run(onnx.load(model), feeds)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--state", default="")
    a = ap.parse_args()
    if a.mode == "crash":
        print("faulty_target: segfaulting now", file=sys.stderr)
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    if a.mode == "hang":
        time.sleep(600)
    if a.mode == "exit":
        print("faulty_target: board not found on /dev/ttyACM0", file=sys.stderr)
        return 3
    if a.mode == "missing":
        return 0
    if a.mode == "malformed":
        Path(a.outputs).write_bytes(b"this is not an npz file")
        return 0
    if a.mode == "flaky":
        state = Path(a.state)
        if not state.exists():
            state.write_text("failed once\n")
            print("faulty_target: transient link error", file=sys.stderr)
            return 3
    outs = _good(a.model, a.inputs)
    if a.mode == "pickled":
        np.savez(a.outputs, **{k: np.array([object()] * v.shape[0], dtype=object) for k, v in outs.items()})
        return 0
    if a.mode == "nan":
        outs = {k: v.copy() for k, v in outs.items()}
        first = next(iter(outs))
        outs[first].reshape(-1)[3] = np.nan
        outs[first].reshape(-1)[5] = np.inf
    if a.mode == "wrong-shape":
        outs = {k: np.concatenate([v, v], axis=-1) for k, v in outs.items()}
    if a.mode == "missing-key":
        outs = {f"{k}_renamed": v for k, v in outs.items()}
    np.savez(a.outputs, **outs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
