"""Lowering of QOperator nodes (QLinearConv, QLinearMatMul, QGemm, MatMulInteger,
ConvInteger and the com.microsoft QLinear* ops) to the engine's ``OpSpec``: the float op
type whose integer kernel implements it, with quantized operands.

Each table row lists, per operand of the float op, the (tensor, scale, zero point)
input indices of the QOperator node (-1: absent), then the output's (scale, zero point).
Scales and zero points are read from ``values``: the model's constants, or, when they
are graph inputs (as in the ONNX node tests), the values of one run
(``RuntimeParams``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from qprobe.backends.engine.graph import GNode, GraphView
from qprobe.backends.engine.kernels.base import Operand, QType
from qprobe.errors import UnsupportedOpError

# op -> (float op type, operands [(tensor, scale, zp)], output (scale, zp) or None)
LAYOUT: dict[str, tuple[str, list[tuple[int, int, int]], tuple[int, int] | None]] = {
    "QLinearConv": ("Conv", [(0, 1, 2), (3, 4, 5), (8, -1, -1)], (6, 7)),
    "QLinearMatMul": ("MatMul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QGemm": ("Gemm", [(0, 1, 2), (3, 4, 5), (6, -1, -1)], (7, 8)),
    "MatMulInteger": ("MatMulInteger", [(0, -1, 2), (1, -1, 3)], None),
    "ConvInteger": ("ConvInteger", [(0, -1, 2), (1, -1, 3)], None),
    "QLinearAdd": ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QLinearMul": ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QLinearAveragePool": ("AveragePool", [(0, 1, 2)], (3, 4)),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", [(0, 1, 2)], (3, 4)),
    "QLinearLeakyRelu": ("LeakyRelu", [(0, 1, 2)], (3, 4)),
    "QLinearSigmoid": ("Sigmoid", [(0, 1, 2)], (3, 4)),
}


class RuntimeParams(Exception):
    """A scale or zero point is not a constant: the node is lowered again at run time."""


def _const(values: Mapping[str, np.ndarray], node: GNode, index: int, what: str) -> np.ndarray | None:
    if index < 0 or index >= len(node.inputs) or not node.inputs[index]:
        return None
    value = values.get(node.inputs[index])
    if value is None:
        raise RuntimeParams(f"{node.op_type} node {node.name!r}: {what} ({node.inputs[index]!r}) is not constant")
    return np.asarray(value, np.float32) if np.asarray(value).dtype.kind == "f" else np.asarray(value)


def _dtype(view: GraphView, values: Mapping[str, np.ndarray], name: str, zp: np.ndarray | None,
           default: str) -> str:
    if zp is not None:
        return str(zp.dtype)
    if name in values:
        return str(np.asarray(values[name]).dtype)
    return view.dtypes.get(name, default)


def _operand(view: GraphView, values: Mapping[str, np.ndarray], node: GNode, t: int, s: int, z: int,
             axis: int | None) -> Operand:
    if t >= len(node.inputs) or not node.inputs[t]:
        return Operand("")
    name = node.inputs[t]
    scale = _const(values, node, s, "scale") if s >= 0 else np.float32(1.0)
    zp = _const(values, node, z, "zero point")
    dtype = _dtype(view, values, name, zp, "uint8")
    if s < 0 and z < 0:  # bias: int32, no quantization of its own
        return Operand(name, values.get(name), None)
    q = QType.make(scale, zp, dtype, axis if np.asarray(scale).size > 1 or np.asarray(zp).size > 1 else None)
    return Operand(name, values.get(name), q)


def lower(
    view: GraphView, node: GNode, values: Mapping[str, np.ndarray]
) -> tuple[str, dict[str, Any], tuple[Operand, ...], QType | None]:
    """(float op type, attributes, operands, output quantization) of a QOperator node."""
    if node.op_type == "QLinearConcat":
        return _concat(view, values, node)
    if node.op_type not in LAYOUT:
        raise UnsupportedOpError(f"QOperator {node.op_type} (node {node.name!r}) has no engine kernel")
    op, operands, out = LAYOUT[node.op_type]
    if node.attrs.get("channels_last", 0):
        raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: channels_last=1 is not supported")
    axes: dict[int, Callable[[], int]] = {
        1: lambda: 0 if op in ("Conv", "ConvInteger") or (op == "Gemm" and node.attrs.get("transB", 0)) else -1,
    }
    ops = tuple(_operand(view, values, node, t, s, z, axes.get(k, lambda: 1)())
                for k, (t, s, z) in enumerate(operands))
    out_q = None
    if out is not None:
        s, z = _const(values, node, out[0], "output scale"), _const(values, node, out[1], "output zero point")
        if s is None:
            raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: float output (no y_scale) is not supported")
        out_q = QType.make(s, z, _dtype(view, values, "", z, ops[0].qtype.dtype if ops[0].qtype else "uint8"))
    return op, dict(node.attrs), ops, out_q


def _concat(
    view: GraphView, values: Mapping[str, np.ndarray], node: GNode
) -> tuple[str, dict[str, Any], tuple[Operand, ...], QType | None]:
    s, z = _const(values, node, 0, "output scale"), _const(values, node, 1, "output zero point")
    ops = tuple(_operand(view, values, node, t, t + 1, t + 2, None) for t in range(2, len(node.inputs), 3))
    out_q = QType.make(s, z, _dtype(view, values, "", z, ops[0].qtype.dtype if ops[0].qtype else "uint8"))
    return "Concat", dict(node.attrs), ops, out_q
