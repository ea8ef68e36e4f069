"""Run every benchmark once and print its numbers (``make bench``; ``make bench-quick`` / ``--quick``).

Each benchmark measures qprobe against onnxruntime or a peer *in the same run*, each tool in
its own subprocess, with qprobe's defaults (no environment variable set), and prints ratios
and whether each target of issue 16 is met; nothing here asserts a speed. ``--quick`` (CI)
uses small sizes and runs in about two minutes; the full mode is what docs/performance.md
reports.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

# (title, script, full-mode arguments, quick-mode arguments)
SECTIONS: list[tuple[str, str, list[str], list[str]]] = [
    ("compare vs bare runs vs Polygraphy vs qdq_loss_debug: TCN", "bench_compare.py",
     ["--model", "tcn", "--samples", "100", "1000", "10000"], ["--model", "tcn", "--samples", "100"]),
    ("compare ...: MobileNet-like", "bench_compare.py",
     ["--model", "mobilenet", "--samples", "100", "1000"], ["--model", "mobilenet", "--samples", "64"]),
    ("compare ...: ResNet-18-sized", "bench_compare.py", ["--model", "resnet18", "--samples", "100"], []),
    ("compare peak RSS growth with the sample count (TCN, every tensor)", "bench_compare.py",
     ["--growth", "--model", "tcn", "--samples", "100", "10000"],
     ["--growth", "--model", "tcn", "--samples", "100", "2000"]),
    ("compare peak RSS growth with the sample count (TCN, outputs)", "bench_compare.py",
     ["--growth", "--model", "tcn", "--probe", "outputs", "--samples", "100", "100000"], []),
    ("engine vs onnxruntime (ort, ort-fused) at batch 1 and 64", "engine_speed.py", [], ["--quick"]),
    ("localize: wall time and target runs per strategy", "bench_localize.py", [],
     ["--strategies", "auto", "bisect"]),
    ("thread settings: qprobe's defaults vs hand-tuned", "bench_threads.py", [], ["--quick"]),
]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    rc = 0
    t_all = time.perf_counter()
    print(f"qprobe benchmarks ({'quick' if quick else 'full'} mode)", flush=True)
    for title, script, full, short in SECTIONS:
        args = short if quick else full
        if quick and not short and script == "bench_compare.py":
            continue  # a full-mode-only section
        print(f"\n== {title} ({script} {' '.join(args)})", flush=True)
        t0 = time.perf_counter()
        rc |= subprocess.run([sys.executable, str(HERE / script), *args]).returncode
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nall benchmarks: {time.perf_counter() - t_all:.0f} s")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
