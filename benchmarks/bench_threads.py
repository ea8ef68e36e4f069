"""qprobe's default thread settings against hand-tuned ones, measured in the same run.

``qprobe.threads`` pins numpy's BLAS to 1 thread, gives onnxruntime the idle cores and lets
the engine split a batch over the cores when that measures faster. Each variant overrides
that with ``QPROBE_BLAS_THREADS``/``QPROBE_ORT_THREADS`` (``engine=1``:
``QPROBE_ENGINE_THREADS``, no batch split) and runs, each in a fresh subprocess: ``compare``
(ort vs ort-fused, every tensor, through ``bench_compare``) and the engine alone
(``engine:onnxruntime`` on the MobileNet-like model, batch 64, 5 runs). Variants run
interleaved, best of 3 rounds (``--quick``: 1 round, no MobileNet compare). The default
should be as fast as the best variant (ratio ~1).

    python benchmarks/bench_threads.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def _variants() -> list[tuple[str, dict[str, str]]]:
    n = str(len(os.sched_getaffinity(0)))
    return [("default", {}), (f"blas={n}", {"QPROBE_BLAS_THREADS": n}), ("ort=1", {"QPROBE_ORT_THREADS": "1"}),
            (f"blas={n},ort=1", {"QPROBE_BLAS_THREADS": n, "QPROBE_ORT_THREADS": "1"}),
            ("engine=1", {"QPROBE_ENGINE_THREADS": "1"})]


def engine_child() -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    import onnx_ir as ir

    from bench_models import batches, model_path
    from qprobe.backends import create_backend

    path = model_path("mobilenet")
    session = create_backend("engine:onnxruntime").open(ir.load(path))
    feeds = next(iter(batches(path, 64, 64)))
    session.run(feeds)
    t0 = time.perf_counter()
    for _ in range(5):
        session.run(feeds)
    return {"seconds": time.perf_counter() - t0}


def _run(args: list[str], env: dict[str, str]) -> float:
    full = {k: v for k, v in os.environ.items() if not k.startswith("QPROBE_")} | env
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=1800)
    return json.loads(r.stdout.strip().splitlines()[-1])["seconds"] if r.returncode == 0 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(engine_child()))
        return 0
    cases = [("compare tcn 1000", [str(HERE / "bench_compare.py"), "--child", "qprobe", "--model", "tcn", "--samples",
                                   "200" if a.quick else "1000"]),
             ("compare mobilenet", [str(HERE / "bench_compare.py"), "--child", "qprobe", "--model", "mobilenet",
                                    "--samples", "64" if a.quick else "300"]),
             ("engine mobilenet b64", [__file__, "--child"])]
    variants = _variants()
    print(f"{'case':22} " + " ".join(f"{v:>15}" for v, _ in variants) + "  default/best")
    rounds = 1 if a.quick else 3
    if a.quick:
        cases = [cases[0], cases[2]]
    for label, args in cases:
        runs: list[list[float]] = [[] for _ in variants]
        for _ in range(rounds):  # interleaved, so every variant sees the same load; the best round counts
            for ts, (_, env) in zip(runs, variants, strict=True):
                ts.append(_run(args, env))
        times = [min(ts) for ts in runs]
        best = min(t for t in times if t == t)
        print(f"{label:22} " + " ".join(f"{t:>14.2f}s" for t in times) + f"  {times[0] / best:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
