"""Serial compare vs ``--cluster local:N``: speed-up and each process's peak RSS, in one run.

    python benchmarks/dask_scaling.py [--tcn 100000] [--resnet 1000] [--workers 2] [--probe op-outputs]

Two cases (the issue's): the bundled TCN at ``--tcn`` random samples (reference ``ort``, target
``engine:arith16-wrap``, the emulated NPU defect), and the ResNet-18-sized int8 model of
``benchmarks/resnet18.py`` at ``--resnet`` samples (``ort`` vs ``ort-fused``). Each side runs in a
fresh subprocess so its peak RSS is its own: the serial run's ``ru_maxrss``, and for the cluster
run the client's and every worker's (``client.run`` of ``getrusage`` before the cluster closes).
Both sides use the same batch size (the serial default budget's choice), so their Comparisons are
bit-equal; the script checks that. "cluster" time is the comparison alone; "with startup" adds
starting the LocalCluster. On a machine with fewer free cores than workers the speed-up is below 1:
the numbers say what this machine gives, not what the code could.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def _case(name: str) -> tuple[Path, str, str]:
    if name == "tcn":
        from qprobe.examples.tcn import packaged_example_dir

        return packaged_example_dir() / "tcn_int8.onnx", "ort", "engine:arith16-wrap"
    sys.path.insert(0, str(HERE))
    from resnet18 import resnet18_path

    return resnet18_path(), "ort", "ort-fused"


def _one(case: str, samples: int, workers: int, probe: str, batch: int, out: Path) -> None:
    """In a subprocess: one comparison, serial (workers == 0) or on a LocalCluster; JSON to ``out``."""
    from qprobe.backends import create_backend
    from qprobe.compare import InputRequest, compare_backends, resolve_inputs
    from qprobe.model.loader import load_model

    path, ref, target = _case(case)
    model = load_model(path)
    request = InputRequest(random=samples, seed=1)
    backends = (create_backend(ref, {}), create_backend(target, {}))
    inputs = resolve_inputs(model, request, backends)
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if workers == 0:
        cmp = compare_backends(model, *backends, inputs, probe=probe, batch_size=batch)
        info["seconds"] = time.perf_counter() - t0
    else:
        from qprobe.execute import compare_on_cluster, connect

        with connect(f"local:{workers}") as cluster:
            t1 = time.perf_counter()
            cmp = compare_on_cluster(cluster, model, *backends, request, inputs=inputs, probe=probe, batch_size=batch)
            info["seconds"] = time.perf_counter() - t1
            info["worker_rss_mib"] = sorted(v / 1024 for v in cluster.client.run(_peak_rss_kib).values())
            info["memory_limit_mib"] = (cluster.memory_limit() or 0) / 2**20
        info["with_startup"] = time.perf_counter() - t0
    info["client_rss_mib"] = _peak_rss_kib() / 1024
    doc = cmp.to_json()
    doc.pop("provenance")
    doc.pop("session_info")  # thread pools: a local worker's onnxruntime pool is its share of the cores
    info["comparison"] = doc
    out.write_text(json.dumps(info))


def _peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _run(case: str, samples: int, workers: int, probe: str, batch: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{case}-{workers}.json"
    subprocess.run([sys.executable, __file__, "--one", case, str(samples), str(workers), probe, str(batch), str(out)],
                   check=True, timeout=7200)
    return dict(json.loads(out.read_text()))


def _batch(case: str, probe: str) -> int:
    """The serial default's batch (1 GiB budget), used by both sides so they compare bit for bit."""
    from qprobe.compare.budget import DEFAULT_MEMORY_BUDGET, choose_batch_size
    from qprobe.compare.run import restrict_plan
    from qprobe.model.loader import load_model
    from qprobe.model.probe import plan_probes
    from qprobe.model.quant import build_quant_index

    model = load_model(_case(case)[0])
    plan = restrict_plan(plan_probes(model, build_quant_index(model), probe))
    return choose_batch_size(model, plan, DEFAULT_MEMORY_BUDGET)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcn", type=int, default=100_000, help="TCN samples (0: skip)")
    ap.add_argument("--resnet", type=int, default=1000, help="ResNet-18-sized model samples (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--probe", default="op-outputs")
    a = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for case, n in (("tcn", a.tcn), ("resnet18", a.resnet)):
            if n <= 0:
                continue
            batch = _batch(case, a.probe)
            serial = _run(case, n, 0, a.probe, batch, Path(tmp))
            dist = _run(case, n, a.workers, a.probe, batch, Path(tmp))
            same = serial["comparison"] == dist["comparison"]
            print(f"{case}: {n} samples, batch {batch}, probe {a.probe}")
            print(f"  serial        {serial['seconds']:8.1f} s   peak RSS {serial['client_rss_mib']:7.0f} MiB")
            print(f"  local:{a.workers}       {dist['seconds']:8.1f} s   (with cluster startup "
                  f"{dist['with_startup']:.1f} s)   client peak RSS {dist['client_rss_mib']:.0f} MiB")
            print(f"  workers' peak RSS (MiB): {', '.join(f'{v:.0f}' for v in dist['worker_rss_mib'])} "
                  f"(memory limit {dist['memory_limit_mib']:.0f} MiB each)")
            print(f"  speed-up {serial['seconds'] / dist['seconds']:.2f}x "
                  f"({serial['seconds'] / dist['with_startup']:.2f}x with startup); "
                  f"Comparison identical to serial: {same}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        c, n, w, p, b, o = sys.argv[2:8]
        _one(c, int(n), int(w), p, int(b), Path(o))
    else:
        main()
