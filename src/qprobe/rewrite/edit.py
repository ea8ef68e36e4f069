"""Graph edits shared by the passes: fresh names, constants, Q/DQ nodes, retargeted quantization.

Every edit creates new initializers instead of changing shared ones (quantize_static shares
one scale initializer between tensors of the same quantization), and every new node or
tensor gets a name no existing one has, so the names a pass does not replace stay valid.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx_ir as ir

from qprobe.rewrite.site import qdq_params
from qprobe.tensors import INT_RANGES, QuantParams

# data movement that keeps codes: Q(op(DQ(x))) with equal parameters is the same codes moved
PASSTHROUGH = frozenset({"Slice", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
                         "MaxPool", "Gather", "Split", "Pad", "Expand", "Tile", "Resize"})


class Namer:
    """Unique names for new nodes and tensors of one model."""

    def __init__(self, model: ir.Model) -> None:
        g = model.graph
        self.used = {n.name for n in g if n.name} | {v.name for n in g for v in n.outputs if v.name}
        self.used |= {v.name for v in g.inputs if v.name} | set(g.initializers)

    def __call__(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name


def add_const(model: ir.Model, names: Namer, base: str, array: np.ndarray) -> ir.Value:
    name = names(base)
    value = ir.Value(name=name, const_value=ir.tensor(np.asarray(array), name=name))
    value.shape = ir.Shape(np.asarray(array).shape)
    value.dtype = ir.DataType.from_numpy(np.asarray(array).dtype)
    model.graph.register_initializer(value)
    return value


def quant_inputs(model: ir.Model, names: Namer, base: str, q: QuantParams) -> tuple[ir.Value, ir.Value]:
    scale = add_const(model, names, f"{base}_scale", np.asarray(q.scale[0], dtype=np.float32))
    zp = add_const(model, names, f"{base}_zero_point", np.asarray(q.zero_point[0], dtype=np.dtype(q.dtype)))
    return scale, zp


def make_q(model: ir.Model, names: Namer, x: ir.Value, q: QuantParams, base: str) -> ir.Node:
    s, z = quant_inputs(model, names, base, q)
    out = ir.Value(name=names(f"{base}_QuantizeLinear_Output"))
    return ir.Node("", "QuantizeLinear", [x, s, z], outputs=[out], name=names(f"{base}_QuantizeLinear"))


def make_dq(model: ir.Model, names: Namer, codes: ir.Value, q: QuantParams, base: str) -> ir.Node:
    s, z = quant_inputs(model, names, base, q)
    out = ir.Value(name=names(f"{base}_DequantizeLinear_Output"))
    return ir.Node("", "DequantizeLinear", [codes, s, z], outputs=[out], name=names(f"{base}_DequantizeLinear"))


def set_params(model: ir.Model, names: Namer, node: ir.Node, q: QuantParams,
               shared: tuple[ir.Value, ir.Value] | None = None) -> tuple[ir.Value, ir.Value]:
    """Give a Q or DQ node (scale, zero point) initializers holding ``q``: ``shared`` ones, or new ones."""
    s, z = shared or quant_inputs(model, names, node.name or node.op_type, q)
    node.replace_input_with(1, s)
    if len(node.inputs) < 3:
        node.resize_inputs(3)
    node.replace_input_with(2, z)
    return s, z


def codes_users(codes: ir.Value) -> list[ir.Node]:
    """The DequantizeLinear nodes that read ``codes``."""
    return [u for u, _ in codes.uses() if u.op_type == "DequantizeLinear"]


def retarget(model: ir.Model, names: Namer, codes: Iterable[ir.Value], q: QuantParams) -> list[str]:
    """Quantize each of ``codes`` with ``q``: its QuantizeLinear and every DequantizeLinear reading
    it, all through one new (scale, zero point) pair; returns the names of the nodes changed."""
    changed: list[str] = []
    shared: tuple[ir.Value, ir.Value] | None = None
    for c in codes:
        if c.dtype is not None and c.dtype != ir.DataType.from_numpy(np.dtype(q.dtype)):
            c.dtype = ir.DataType.from_numpy(np.dtype(q.dtype))
        producer = c.producer()
        nodes = ([producer] if producer is not None and producer.op_type == "QuantizeLinear" else []) + codes_users(c)
        for n in nodes:
            shared = set_params(model, names, n, q, shared)
            changed.append(n.name or "")
    return changed


def _same(a: QuantParams | None, b: QuantParams | None) -> bool:
    return a is not None and b is not None and a == b


def code_family(codes: ir.Value) -> list[ir.Value]:
    """``codes`` and the codes tied to it by data movement at identical parameters, both ways
    (``Q(Slice(DQ(c)))`` with c's parameters is c moved): retargeting one alone would turn that
    movement into a requantization."""
    def params(c: ir.Value) -> QuantParams | None:
        p = c.producer()
        return qdq_params(p) if p is not None and p.op_type == "QuantizeLinear" else None

    family, todo = [codes], [codes]
    while todo:
        c = todo.pop()
        for nxt in _moved_from(c) + _moved_to(c):
            if nxt not in family and _same(params(nxt), params(codes)):
                family.append(nxt)
                todo.append(nxt)
    return family


def _moved_to(codes: ir.Value) -> list[ir.Value]:
    out = []
    for dq in codes_users(codes):
        for user, _ in dq.outputs[0].uses():
            if user.op_type in PASSTHROUGH:
                out += [q.outputs[0] for q, _ in user.outputs[0].uses() if q.op_type == "QuantizeLinear"]
    return out


def _moved_from(codes: ir.Value) -> list[ir.Value]:
    q = codes.producer()
    if q is None or q.op_type != "QuantizeLinear" or q.inputs[0] is None:
        return []
    mover = q.inputs[0].producer()
    if mover is None or mover.op_type not in PASSTHROUGH or mover.inputs[0] is None:
        return []
    dq = mover.inputs[0].producer()
    return [dq.inputs[0]] if dq is not None and dq.op_type == "DequantizeLinear" and dq.inputs[0] is not None else []


def range_of(q: QuantParams) -> tuple[float, float]:
    """The real interval ``q`` represents."""
    s, z = q.scale[0], q.zero_point[0]
    return (q.qmin - z) * s, (q.qmax - z) * s


def params_for_range(lo: float, hi: float, dtype: str = "int8") -> QuantParams:
    """Asymmetric min/max parameters as onnxruntime's calibration computes them (the range holds 0)."""
    qmin, qmax = INT_RANGES[dtype]
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32((hi - lo) / (qmax - qmin))) if hi > lo else 1.0
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return QuantParams.from_arrays(np.float32(scale), np.array([zp], dtype=np.dtype(dtype)), dtype)


def with_scale(q: QuantParams, scale: float, zero_point: int | None = None) -> QuantParams:
    zp = q.zero_point[0] if zero_point is None else int(np.clip(zero_point, q.qmin, q.qmax))
    return QuantParams.from_arrays(np.float32(scale), np.array([zp], dtype=np.dtype(q.dtype)), q.dtype)
