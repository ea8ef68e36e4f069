"""Peak memory of a tensor-by-tensor comparison: qprobe (streaming) vs onnxruntime's qdq_loss_debug.

Both tap every quantized activation of the bundled TCN over the same samples.
qdq_loss_debug's ``collect_activations`` keeps every tapped tensor of every sample in
memory; qprobe's ``compare_backends`` keeps one batch and merges metrics. Each side runs in
its own subprocess, and its peak RSS (``ru_maxrss``) is reported together with the ratio.

    python benchmarks/compare_memory.py [--samples 1024 4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _qprobe(samples: int) -> dict[str, float]:
    import numpy as np

    from qprobe.backends import create_backend
    from qprobe.compare import compare_backends
    from qprobe.examples.tcn import packaged_example_dir
    from qprobe.model.inputs import InputSet
    from qprobe.model.loader import load_model

    m = load_model(packaged_example_dir() / "tcn_int8.onnx")
    base = np.load(packaged_example_dir() / "tcn_inputs.npz")["window"]
    x = np.concatenate([base] * (samples // len(base) + 1))[:samples]
    t0 = time.perf_counter()
    cmp = compare_backends(m, create_backend("ort"), create_backend("ort"), InputSet({"window": x}, "bench"),
                           probe="all", batch_size=64, check_probe_effect=False)
    return {"seconds": time.perf_counter() - t0, "tensors": len(cmp.rows)}


def _qdq_loss_debug(samples: int) -> dict[str, float]:
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        modify_model_output_intermediate_tensors,
    )

    from qprobe.examples.tcn import packaged_example_dir

    base = np.load(packaged_example_dir() / "tcn_inputs.npz")["window"]
    x = np.concatenate([base] * (samples // len(base) + 1))[:samples]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(x):
                return None
            self.i += 64
            return {"window": x[self.i - 64 : self.i]}

    with tempfile.TemporaryDirectory() as d:
        aug = Path(d) / "aug.onnx"
        modify_model_output_intermediate_tensors(str(packaged_example_dir() / "tcn_int8.onnx"), str(aug))
        t0 = time.perf_counter()
        acts = collect_activations(str(aug), Reader())
        return {"seconds": time.perf_counter() - t0, "tensors": len(acts)}


def _child(which: str, samples: int) -> None:
    res = _qprobe(samples) if which == "qprobe" else _qdq_loss_debug(samples)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--child", choices=["qprobe", "qdq_loss_debug"])
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.samples[0])
        return
    print("compare memory on the TCN, every activation tapped (qprobe: quantized tensors, two backends "
          "and metrics; qdq_loss_debug: every float tensor, one backend, no metrics)")
    for n in a.samples:
        out = {}
        for which in ("qprobe", "qdq_loss_debug"):
            r = subprocess.run([sys.executable, __file__, "--child", which, "--samples", str(n)],
                               capture_output=True, text=True, check=True)
            out[which] = json.loads(r.stdout.strip().splitlines()[-1])
        q, o = out["qprobe"], out["qdq_loss_debug"]
        print(f"  {n} samples: qprobe compare (batch 64) peak RSS {q['peak_rss_mb']:.0f} MB, {q['seconds']:.2f} s, "
              f"{q['tensors']} tensors | qdq_loss_debug.collect_activations {o['peak_rss_mb']:.0f} MB, "
              f"{o['seconds']:.2f} s, {o['tensors']} tensors | memory ratio {q['peak_rss_mb'] / o['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
