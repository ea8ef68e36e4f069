"""A stand-in NPU for ``command:`` templates with an eltwise defect that depends on scale ratios only.

Usage: ``command:python tests/fix/ratio_defect_target.py {model} {inputs} {outputs}``

The law it emulates (the arith16-wrap hypothesis, written here independently of qprobe's
engine): an int8 QDQ Add/Sub, or a Concat that requantizes an operand, computes each operand's
term with a signed 16-bit coefficient ``A = round(r * 2**14)`` (``r`` = operand scale / output
scale), which wraps to 16 bits when it does not fit, while the zero points are folded with the
exact ratio. So an operand with ``r >= 2`` contributes ``(A_wrapped / 2**14) * s_out * q - r * s_out * z``
instead of ``s * (q - z)``. Which nodes are hit is decided from their scales alone, never from
their names. Everything else runs in onnxruntime without graph optimizations.

Environment: ``QPROBE_TARGET_COUNT_FILE`` gets one line per run (the tests count target runs).
"""

from __future__ import annotations

import os
import sys

print("ratio_defect_target: starting", flush=True)  # before the heavy imports (the backend waits for output)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

SHIFT, TOP = 14, 32767


def wrapped(ratio: float) -> float:
    """The ratio a 16-bit coefficient holds: exact below 2, wrapped (two's complement) above."""
    a = int(np.floor(abs(ratio) * 2**SHIFT + 0.5)) * (1 if ratio >= 0 else -1)
    if -TOP - 1 <= a <= TOP:
        return a / 2**SHIFT
    return (((a + 2**15) % 2**16) - 2**15) / 2**SHIFT


def _consts(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in g.initializer}


def _out_scale(g: onnx.GraphProto, node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> float | None:
    t = node.output[0]
    for _ in range(3):  # through a Relu between the op and its QuantizeLinear
        users = [n for n in g.node if t in n.input]
        if len(users) != 1:
            return None
        if users[0].op_type == "QuantizeLinear":
            return float(consts[users[0].input[1]].reshape(()))
        if users[0].op_type != "Relu":
            return None
        t = users[0].output[0]
    return None


def inject(model: onnx.ModelProto) -> list[str]:
    """Rewrite every operand that a 16-bit coefficient cannot hold; returns what was hit."""
    g, consts = model.graph, _consts(model.graph)
    producers = {o: n for n in g.node for o in n.output}
    hit, new_nodes = [], []
    for node in list(g.node):
        if node.op_type not in ("Add", "Sub", "Concat"):
            continue
        so = _out_scale(g, node, consts)
        for k, name in enumerate(node.input):
            dq = producers.get(name)
            if so is None or dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in consts:
                continue
            s, z = float(consts[dq.input[1]].reshape(())), float(consts[dq.input[2]].reshape(()))
            r = s / so
            if r == wrapped(r) or abs(r - wrapped(r)) < 1e-3:
                continue
            tag = f"{node.name}__defect{k}"
            g.initializer.extend([numpy_helper.from_array(np.float32(wrapped(r) * so), f"{tag}_scale"),
                                  numpy_helper.from_array(np.float32(-r * so * z), f"{tag}_offset")])
            new_nodes.append((node, [
                helper.make_node("Cast", [dq.input[0]], [f"{tag}_f"], to=onnx.TensorProto.FLOAT, name=f"{tag}_cast"),
                helper.make_node("Mul", [f"{tag}_f", f"{tag}_scale"], [f"{tag}_m"], name=f"{tag}_mul"),
                helper.make_node("Add", [f"{tag}_m", f"{tag}_offset"], [f"{tag}_v"], name=f"{tag}_add")]))
            node.input[k] = f"{tag}_v"
            hit.append(f"{node.name}[{k}] ratio {r:.3f} -> {wrapped(r):.3f}")
    for node, extra in new_nodes:
        idx = list(g.node).index(node)
        for n in reversed(extra):
            g.node.insert(idx, n)
    return hit


def run(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))


def main(argv: list[str]) -> int:
    model_path, inputs_path, outputs_path = argv
    count = os.environ.get("QPROBE_TARGET_COUNT_FILE")
    if count:
        with open(count, "a") as fh:
            fh.write(f"{os.getpid()}\n")
    model = onnx.load(model_path)
    hit = inject(model)
    with np.load(inputs_path) as z:
        feeds = {k: z[k] for k in z.files}
    np.savez(outputs_path, **run(model, feeds))
    print(f"ratio_defect_target: {len(hit)} operand(s) hit: {'; '.join(hit) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
