"""Lowering of QOperator nodes (QLinearConv, QLinearMatMul, QGemm, MatMulInteger,
ConvInteger and the com.microsoft QLinear* ops) to the engine's ``OpSpec``: the float op
type whose integer kernel implements it, with quantized operands.

The layout of each QOperator node (per operand of the float op, the (tensor, scale, zero
point) input indices, then the output's (scale, zero point)) is ``qprobe.model.qoperator``'s
table, which the quantization view reads too.
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
from qprobe.model.qoperator import SIGNATURES

LAYOUT = {op: (sig.float_op, list(sig.operands), sig.output) for op, sig in SIGNATURES.items()
          if op != "QLinearConcat"}  # the one table: qprobe.model.qoperator


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
