"""Run every benchmark once and print its numbers (``make bench``).

Each benchmark measures qprobe against onnxruntime or a peer *in the same run* and prints
ratios; nothing here asserts a speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ["engine_speed.py", "compare_memory.py", "explain_speed.py"]


def main() -> int:
    here = Path(__file__).parent
    rc = 0
    for name in BENCHMARKS:
        path = here / name
        if not path.exists():
            print(f"== {name}: missing")
            rc = 1
            continue
        print(f"== {name}", flush=True)
        rc |= subprocess.run([sys.executable, str(path), *sys.argv[1:]]).returncode
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
