"""The QDQ neighbourhood of one op, as the rewrite passes see it.

``find_site(model, name)`` reads an op that forms a QDQ group: every activation operand
comes from a DequantizeLinear of per-tensor codes, and its one output reaches a single
QuantizeLinear, possibly through Relu/Clip nodes (``chain``). It returns a ``Site``, or a
sentence saying why the op is not such a group (the refusal reason of every pass that
needs one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.model.graph import const_array, is_constant, name_of
from qprobe.tensors import QuantParams

CHAIN_OPS = ("Relu", "Clip")


@dataclass(frozen=True)
class Operand:
    index: int  # input position on the op
    dq: ir.Node  # the DequantizeLinear that feeds it
    codes: ir.Value  # the integer codes the DequantizeLinear reads
    quant: QuantParams


@dataclass(frozen=True)
class Site:
    node: ir.Node
    operands: tuple[Operand, ...]
    chain: tuple[ir.Node, ...]  # Relu/Clip between the op and its QuantizeLinear
    q: ir.Node  # the output QuantizeLinear
    out_quant: QuantParams

    @property
    def name(self) -> str:
        return self.node.name or ""

    @property
    def out_codes(self) -> ir.Value:
        return self.q.outputs[0]

    @property
    def ratios(self) -> tuple[float, ...]:
        s = self.out_quant.scale[0]
        return tuple(o.quant.scale[0] / s for o in self.operands)

    def worst(self) -> Operand:
        """The operand with the largest scale ratio."""
        return max(self.operands, key=lambda o: o.quant.scale[0])

    def float_out(self) -> ir.Value:
        """The float tensor the output QuantizeLinear reads (after the Relu/Clip chain)."""
        value = self.q.inputs[0]
        assert value is not None
        return value


def find_node(model: ir.Model, name: str) -> ir.Node | None:
    return next((n for n in model.graph if n.name == name), None)


def qdq_params(node: ir.Node) -> QuantParams | None:
    """Per-tensor params of a Q or DQ node with constant scale and zero point, else None."""
    scale = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if scale is None or scale.size != 1:
        return None
    zv = node.inputs[2] if len(node.inputs) > 2 else None
    zp = const_array(zv)
    if zv is not None and zp is None:
        return None
    dtype = "uint8" if zp is None else str(zp.dtype)
    if dtype not in ("int8", "uint8", "int16", "uint16"):
        return None
    return QuantParams.from_arrays(scale, zp if zp is not None else np.zeros(1, np.uint8), dtype)


def find_site(model: ir.Model, name: str) -> Site | str:
    node = find_node(model, name)
    if node is None:
        return f"no node named {name!r} in the model"
    operands = []
    for i, v in enumerate(node.inputs):
        if v is None or (is_constant(v) and not _dq_of_activation(v)):
            continue
        p = v.producer()
        if p is None or p.op_type != "DequantizeLinear":
            return f"{name} ({node.op_type}) input {name_of(v)!r} does not come from a DequantizeLinear"
        quant = qdq_params(p)
        codes = p.inputs[0]
        if quant is None or codes is None:
            return f"{name} input {name_of(v)!r} is not per-tensor quantized with constant parameters"
        operands.append(Operand(i, p, codes, quant))
    if not operands:
        return f"{name} ({node.op_type}) has no quantized activation operand"
    found = _output_chain(node)
    if isinstance(found, str):
        return f"{name} ({node.op_type}): {found}"
    chain, q = found
    out_quant = qdq_params(q)
    if out_quant is None:
        return f"{name}'s output QuantizeLinear {q.name!r} is not per-tensor with constant parameters"
    return Site(node, tuple(operands), chain, q, out_quant)


def _dq_of_activation(v: ir.Value) -> bool:
    p = v.producer()
    return p is not None and p.op_type == "DequantizeLinear" and const_array(p.inputs[0]) is None


def _output_chain(node: ir.Node) -> tuple[tuple[ir.Node, ...], ir.Node] | str:
    if len(node.outputs) != 1:
        return "it has more than one output"
    value, chain = node.outputs[0], list[ir.Node]()
    while True:
        users = [u for u, _ in value.uses()]
        if value.is_graph_output() or len(users) != 1:
            return f"its output {name_of(value)!r} does not feed exactly one QuantizeLinear"
        user = users[0]
        if user.op_type == "QuantizeLinear":
            return tuple(chain), user
        if user.op_type not in CHAIN_OPS:
            return f"its output feeds {user.op_type} {user.name!r}, not a QuantizeLinear"
        chain.append(user)
        value = user.outputs[0]
