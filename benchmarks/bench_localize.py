"""localize's wall time and target runs per strategy, on the bundled TCN and the demo's target.

The reference ``ort-fused``, the target ``engine:arith16-wrap`` (``make demo``'s), the
example's 64 windows; each strategy runs in its own subprocess (imports excluded from the
time). Prints the culprit each found, so a faster strategy that finds another op shows.

    python benchmarks/bench_localize.py [--strategies auto probe-all isolate bisect]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

STRATEGIES = ("auto", "probe-all", "isolate", "bisect")


def child(strategy: str) -> dict[str, object]:
    from qprobe.backends import create_backend
    from qprobe.cli.common import example_paths
    from qprobe.localize import localize
    from qprobe.model.inputs import load_inputs
    from qprobe.model.loader import load_model

    mpath, ipath = example_paths("tcn")
    m = load_model(mpath)
    ref, tgt = create_backend("ort-fused"), create_backend("engine:arith16-wrap")
    for b in (ref, tgt):
        b.bind(m)
    x = load_inputs(m, ipath)
    t0 = time.perf_counter()
    loc = localize(m, ref, tgt, x, strategy=strategy)
    div = loc.divergence
    return {"strategy": strategy, "seconds": time.perf_counter() - t0, "target_runs": div.target_runs,
            "reference_runs": div.reference_runs,
            "culprit": div.culprit.op if div.culprit is not None else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child)))
        return 0
    print(f"{'strategy':10} {'seconds':>8} {'target runs':>12} {'ref runs':>9}  culprit")
    for s in a.strategies:
        r = subprocess.run([sys.executable, __file__, "--child", s], capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            print(f"{s:10} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{s:10} {d['seconds']:>8.2f} {d['target_runs']:>12} {d['reference_runs']:>9}  {d['culprit']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
