"""Random float DAGs quantized to int8 QDQ with onnxruntime's quantizer (test models).

The graphs mix chains and branches: Conv (1x1 and 3x3), Relu, Add and Mul of two
earlier tensors, Concat followed by a 1x1 Conv, MaxPool/AveragePool that keep the shape,
Sigmoid, and a GlobalAveragePool -> Flatten -> Gemm head. Every node is named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.build import quantize_file

KINDS = ("conv3", "conv1", "relu", "add", "mul", "concat", "maxpool", "avgpool", "sigmoid")




class _Builder:
    def __init__(self, rng: np.random.Generator, c: int) -> None:
        self.rng, self.c = rng, c
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.tensors = ["x0"]

    def conv(self, src: str, cin: int, k: int) -> str:
        i = len(self.nodes)
        w = self.rng.normal(0, 1.0 / np.sqrt(cin * k * k), (self.c, cin, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.1, (self.c,)).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        p = k // 2
        return self.node("Conv", [src, f"w{i}", f"b{i}"], pads=[p, p, p, p])

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        i = len(self.nodes)
        out = f"t{i}_{op.lower()}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"n{i}_{op.lower()}", **attrs))
        return out

    def step(self, kind: str) -> None:
        pick = self.tensors[-1] if self.rng.random() < 0.6 else self.tensors[self.rng.integers(len(self.tensors))]
        other = self.tensors[self.rng.integers(len(self.tensors))]
        if kind == "conv3":
            out = self.conv(pick, self.c, 3)
        elif kind == "conv1":
            out = self.conv(pick, self.c, 1)
        elif kind in ("add", "mul"):
            out = self.node(kind.capitalize(), [pick, other])
        elif kind == "concat":
            cat = self.node("Concat", [pick, other], axis=1)
            out = self.conv(cat, 2 * self.c, 1)
        elif kind in ("maxpool", "avgpool"):
            op = "MaxPool" if kind == "maxpool" else "AveragePool"
            out = self.node(op, [pick], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        else:
            out = self.node(kind.capitalize(), [pick])
        self.tensors.append(out)


def random_float_model(seed: int, n_ops: int = 8, channels: int = 4, size: int = 6) -> onnx.ModelProto:
    """A random float DAG on ``x[N, 3, size, size]`` ending in a Gemm head ``y[N, 3]``."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng, channels)
    b.tensors = [b.conv("x", 3, 3)]
    for _ in range(n_ops):
        b.step(str(rng.choice(KINDS)))
    used = {t for n in b.nodes for t in n.input}
    dangling = [t for t in b.tensors if t not in used]
    last = dangling[0]
    for t in dangling[1:]:  # every op reaches the output
        last = b.node("Add", [last, t])
    pooled = b.node("GlobalAveragePool", [last])
    flat = b.node("Flatten", [pooled], axis=1)
    wg = numpy_helper.from_array(rng.normal(0, 0.5, (3, channels)).astype(np.float32), "wg")
    bg = numpy_helper.from_array(rng.normal(0, 0.1, (3,)).astype(np.float32), "bg")
    b.inits += [wg, bg]
    b.nodes.append(helper.make_node("Gemm", [flat, "wg", "bg"], ["y"], name="head_gemm", transB=1))
    graph = helper.make_graph(
        b.nodes, f"random{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        b.inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def random_qdq_model(tmp: Path, seed: int, n_ops: int = 8) -> Path:
    """``random_float_model`` quantized to int8 QDQ (per-channel weights) at ``tmp/random<seed>.onnx``."""
    fp = tmp / f"random{seed}_float.onnx"
    onnx.save(random_float_model(seed, n_ops), fp)
    data = np.random.default_rng(seed + 100).uniform(0, 1, (8, 3, 6, 6)).astype(np.float32)
    out = tmp / f"random{seed}.onnx"
    return quantize_file(fp, out, {"x": data})
