"""One-op QDQ models built by hand with onnx.helper, for the knob tests and the targets.

``binary_model(op, a, b, out)`` is ``DQ(a), DQ(b) -> Add|Sub [-> Relu] -> Q(out)`` with each
quantization given as ``(scale, zero_point)`` (int8 codes in and out); ``concat_model``
concatenates requantized inputs along axis 1. Inputs and outputs are int8 codes of
shape ``[N, K]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Quant = tuple[float, int]


def _q(name: str, q: Quant) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(np.array(q[0], dtype=np.float32), f"{name}_s"),
            numpy_helper.from_array(np.array(q[1], dtype=np.int8), f"{name}_z")]


def binary_model(op: str, a: Quant, b: Quant, out: Quant, k: int = 256, relu: bool = False,
                 const_b: np.ndarray | None = None) -> onnx.ModelProto:
    """``const_b``: operand b is these int8 codes as an initializer (shape broadcasting against a)."""
    inits = [*_q("a", a), *_q("b", b), *_q("o", out)]
    if const_b is not None:
        inits.append(numpy_helper.from_array(np.asarray(const_b, dtype=np.int8), "b"))
    nodes = [
        helper.make_node("DequantizeLinear", ["a", "a_s", "a_z"], ["a_f"], name="dq_a"),
        helper.make_node("DequantizeLinear", ["b", "b_s", "b_z"], ["b_f"], name="dq_b"),
        helper.make_node(op, ["a_f", "b_f"], ["y0" if relu else "y"], name="op"),
        *([helper.make_node("Relu", ["y0"], ["y"], name="relu")] if relu else []),
        helper.make_node("QuantizeLinear", ["y", "o_s", "o_z"], ["q"], name="q"),
    ]
    graph = helper.make_graph(
        nodes, "binary",
        [helper.make_tensor_value_info(n, TensorProto.INT8,
                                       ["N", k]) for n in ("a", "b")[: 1 if const_b is not None else 2]],
        [helper.make_tensor_value_info("q", TensorProto.INT8, ["N", k])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def concat_model(inputs: Sequence[Quant], out: Quant, k: int = 256) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(len(inputs))]
    inits = [t for n, q in zip(names, inputs, strict=True) for t in _q(n, q)] + _q("o", out)
    nodes = [helper.make_node("DequantizeLinear", [n, f"{n}_s", f"{n}_z"], [f"{n}_f"], name=f"dq_{n}")
             for n in names]
    nodes += [helper.make_node("Concat", [f"{n}_f" for n in names], ["y"], name="op", axis=1),
              helper.make_node("QuantizeLinear", ["y", "o_s", "o_z"], ["q"], name="q")]
    graph = helper.make_graph(
        nodes, "concat",
        [helper.make_tensor_value_info(n, TensorProto.INT8, ["N", k]) for n in names],
        [helper.make_tensor_value_info("q", TensorProto.INT8, ["N", k * len(names)])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def all_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) int8 pair, as two [256, 256] arrays."""
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    return a.astype(np.int8), b.astype(np.int8)
