"""Speed of ``qprobe explain`` on the bundled TCN, with onnxruntime timed in the same run.

Prints: hypotheses evaluated per second by the search (the coarse pass on a subsample of
the culprit's observations plus the full pass on the survivors), full 256 x 256 hypothesis
tables built per second by the engine's Add kernel, the same for the Conv search (exact
accumulators + the engine's requantizer), and explain's wall time against
``engine:arith16-wrap`` with and without ``--characterize`` (budget 4), each also as a
multiple of one ``ort-fused`` run of the TCN on its 64 samples. numpy's BLAS gets
``--blas-threads`` threads (default 1, as in engine_speed.py).

    python benchmarks/explain_speed.py [--blas-threads 1] [--repeats 3]
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # BLAS threads must be fixed before numpy loads
    _arg = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--blas-threads"), "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", _arg)

import argparse
import statistics
import time

import numpy as np

from qprobe.backends import create_backend
from qprobe.examples.tcn import packaged_example_dir
from qprobe.explain import explain
from qprobe.explain.evaluate import AccSet, PairSet, pair_table
from qprobe.explain.opspec import group_spec
from qprobe.explain.search import search
from qprobe.explain.space import candidates
from qprobe.localize import build_op_graph
from qprobe.model.extract import Cutter
from qprobe.model.inputs import load_inputs
from qprobe.model.loader import load_model
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index


def _ort_ms(model: object, inputs: object, repeats: int) -> float:
    backend = create_backend("ort-fused")
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        backend.open(model).run(inputs.arrays)  # type: ignore[arg-type, attr-defined]
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times[1:])


# type: ignore[type-arg]
def _observed(model: object, inputs: object, node: str, target: str) -> tuple[object, dict, dict]:
    index = build_quant_index(model)  # type: ignore[arg-type]
    op = build_op_graph(model, index).op(node)  # type: ignore[arg-type]
    probed = apply_probe_plan(model, plan_probes(model, index, [*op.inputs, *op.outputs]))  # type: ignore[arg-type]
    # type: ignore[attr-defined]
    feeds = {t: v for t, v in create_backend("ort-fused").open(probed).run(inputs.arrays).items()}
    cut = Cutter(model).cut(op.inputs, op.outputs)  # type: ignore[arg-type]
    obs = create_backend(target).open(cut).run({t: feeds[t] for t in op.inputs})
    return group_spec(cut, node), {t: feeds[t] for t in op.inputs}, obs[op.outputs[0]]


def _search_rate(label: str, sets: list, cands: list) -> None:  # type: ignore[type-arg]
    ranked, stats = search(cands, sets)
    print(f"  {label}: {stats.candidates} candidates, {stats.coarse_evaluations} coarse + {stats.full_evaluations} "
          f"full "
          f"evaluations in {stats.seconds:.2f} s: {stats.per_second:.0f} hypotheses/s; best "
          f"{ranked[0].candidate.base} + {ranked[0].candidate.knobs} ({100 * ranked[0].score.exact:.3f}% exact)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blas-threads", default="1")
    ap.add_argument("--repeats", type=int, default=3)
    args, _unknown = ap.parse_known_args()
    d = packaged_example_dir()
    model = load_model(d / "tcn_int8.onnx")
    inputs = load_inputs(model, d / "tcn_inputs.npz")
    ort_ms = _ort_ms(model, inputs, args.repeats)
    print(f"TCN, {inputs.num_samples} samples; one ort-fused run: {ort_ms:.1f} ms")
    rng = np.random.default_rng(0)
    gs, feeds, obs = _observed(model, inputs, "block0_add", "engine:arith16-wrap")
    names = [gs.spec.inputs[i].name for i, _q in gs.quantized_inputs]  # type: ignore[attr-defined]
    pairs = PairSet("block0_add", gs, feeds[names[0]], feeds[names[1]], obs, rng)  # type: ignore[arg-type]
    cands = candidates("eltwise", "Add")
    _search_rate("Add (eltwise) search", [pairs], cands)
    t0 = time.perf_counter()
    for c in cands[:300]:
        pair_table(gs, c)  # type: ignore[arg-type]
    print(f"  full 256 x 256 Add tables by the engine's kernel: {300 / (time.perf_counter() - t0):.0f} per second")
    cgs, cfeeds, cobs = _observed(model, inputs, "block1_conv", "engine:tflite-single-rounding")
    # type: ignore[attr-defined]
    cargs = [cfeeds[op.name] if op.const is None and op.name else op.const for op in cgs.spec.inputs]
    # type: ignore[arg-type]
    _search_rate("Conv search", [AccSet("block1_conv", cgs, cargs, cobs, rng)], candidates("conv", "Conv"))
    for char in (False, True):
        t0 = time.perf_counter()
        e = explain(model, create_backend("ort-fused"), create_backend("engine:arith16-wrap"), inputs,
                    characterize=char, budget=4)
        wall = time.perf_counter() - t0
        what = "explain --characterize --budget 4" if char else "explain"
        print(f"  {what}: {wall:.1f} s wall ({1e3 * wall / ort_ms:.0f} x one ort-fused run), explained={e.explained}, "
              f"target runs {e.target_runs} ({e.characterization_runs} characterization)"
              + (f", envelope boundary {e.envelope.boundary:.5f}" if e.envelope and e.envelope.boundary else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
