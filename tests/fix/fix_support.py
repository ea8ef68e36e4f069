"""Helpers of the fix tests: a target wrapper that counts opens, plain-numpy metrics, QDQ checks."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
import onnx_ir as ir
from onnx import numpy_helper

from qprobe.backends import Backend, BackendBase, Capabilities, Session


class Counting(BackendBase):
    """Counts ``Backend.open`` calls on the wrapped target (scoped copies share the count)."""

    def __init__(self, inner: Backend, box: list[int] | None = None) -> None:
        self.inner, self.box = inner, box if box is not None else [0]
        self.spec = inner.spec

    @property
    def opens(self) -> int:
        return self.box[0]

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def open(self, model: ir.Model) -> Session:
        self.box[0] += 1
        return self.inner.open(model)

    def scoped(self, nodes: Collection[str]) -> Backend:
        inner = self.inner.scoped(nodes)
        return self if inner is self.inner else Counting(inner, self.box)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()) ** 2)))


def is_int8_qdq_op(proto: onnx.ModelProto, name: str, op_type: str) -> bool:
    """``name`` is an ``op_type`` fed by int8 DequantizeLinear nodes and read by one int8 QuantizeLinear."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    node = next((n for n in proto.graph.node if n.name == name), None)
    if node is None or node.op_type != op_type:
        return False
    for t in node.input:
        dq = producers.get(t)
        if dq is None or dq.op_type != "DequantizeLinear" or inits[dq.input[2]].dtype != np.int8:
            return False
    users = [n for n in proto.graph.node if node.output[0] in n.input]
    return len(users) == 1 and users[0].op_type == "QuantizeLinear" and inits[users[0].input[2]].dtype == np.int8
