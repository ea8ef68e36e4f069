"""A stand-in hardware target for ``command:`` templates: onnxruntime on a mutated model.

Usage as a template (any model qprobe sends, probed or cut):

    command:python tests/targets/mutating_target.py --model {model} --inputs {inputs}
            --outputs {outputs} --node add --factor 0.5

It loads the model it receives, multiplies the float result of node ``--node`` by
``--factor`` (for a QuantizeLinear node: its float input), which is how a biased-low Add
looks from outside, runs onnxruntime without graph optimizations and writes every graph
output to ``outputs.npz``. When the node is not in the model (a cut that excludes it),
the model runs unchanged. Environment variables give the same settings:
``QPROBE_MUTATE_NODE``, ``QPROBE_MUTATE_FACTOR``. For resume tests:
``QPROBE_TARGET_COUNT_FILE`` gets one line per run, and when it already holds
``QPROBE_TARGET_MAX_RUNS`` lines the run fails (exit 75, "board unplugged").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def mutate(model: onnx.ModelProto, node_name: str, factor: float) -> tuple[onnx.ModelProto, bool]:
    """Multiply ``node_name``'s float result by ``factor`` with an inserted Mul; names are kept."""
    g = model.graph
    idx = next((i for i, n in enumerate(g.node) if n.name == node_name), None)
    if idx is None:
        return model, False
    node = g.node[idx]
    f = numpy_helper.from_array(np.array(factor, dtype=np.float32), f"{node_name}__mutation_factor")
    g.initializer.append(f)
    if node.op_type == "QuantizeLinear":  # scale what it quantizes
        src = node.input[0]
        node.input[0] = f"{src}__mutated"
        mul = helper.make_node("Mul", [src, f.name], [node.input[0]], name=f"{node_name}__mutation")
        g.node.insert(idx, mul)
    else:
        out = node.output[0]
        node.output[0] = f"{out}__premutation"
        mul = helper.make_node("Mul", [node.output[0], f.name], [out], name=f"{node_name}__mutation")
        g.node.insert(idx + 1, mul)
    return model, True


def run(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    fixed = any(isinstance(i.shape[0], int) for i in sess.get_inputs() if i.shape)
    n = next(iter(inputs.values())).shape[0]
    if not fixed:
        return dict(zip(names, sess.run(names, inputs), strict=True))
    parts = [sess.run(names, {k: v[i : i + 1] for k, v in inputs.items()}) for i in range(n)]
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(names)}


def _count_run() -> None:
    count_file = os.environ.get("QPROBE_TARGET_COUNT_FILE")
    if not count_file:
        return
    p = Path(count_file)
    done = len(p.read_text().splitlines()) if p.exists() else 0
    limit = os.environ.get("QPROBE_TARGET_MAX_RUNS")
    if limit is not None and done >= int(limit):
        print(f"mutating_target: simulated interruption after {done} runs (board unplugged)", file=sys.stderr)
        raise SystemExit(75)
    with p.open("a") as fh:
        fh.write(f"{os.getpid()}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--node", default=os.environ.get("QPROBE_MUTATE_NODE", ""))
    ap.add_argument("--factor", type=float, default=float(os.environ.get("QPROBE_MUTATE_FACTOR", "0.5")))
    ap.add_argument("--only-unprobed", type=int, default=0, metavar="K",
                    help="mutate only models with at most K graph outputs (a compiler that computes the "
                         "unprobed model differently: exposing tensors hides the defect)")
    a = ap.parse_args(argv)
    _count_run()
    model = onnx.load(a.model)
    applied = False
    if a.node and (not a.only_unprobed or len(model.graph.output) <= a.only_unprobed):
        model, applied = mutate(model, a.node, a.factor)
    with np.load(a.inputs) as z:
        inputs = {k: z[k] for k in z.files}
    outputs = run(model, inputs)
    np.savez(a.outputs, **outputs)
    print(f"mutating_target: node={a.node or '-'} applied={applied} factor={a.factor} outputs={sorted(outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
