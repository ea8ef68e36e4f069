"""The engine's view of a model and the recognition of QDQ groups.

``read_graph`` turns an ``onnx_ir.Model`` into plain ``GNode`` records plus a table of
constants (initializers and Constant nodes). ``plan_units`` splits the nodes into
``Unit``s in topological order: QDQ groups (DequantizeLinear -> op [-> Relu/Clip] ->
QuantizeLinear), QOperator nodes and single nodes.

The grouping rule mirrors onnxruntime's QDQ selectors as measured with onnxruntime
1.32 (tests/engine/test_ort_fusion_rules.py): an op forms a group when each of its
quantized inputs comes from a DequantizeLinear (a DequantizeLinear whose output is
also consumed elsewhere or is a graph output still counts: onnxruntime duplicates it),
and each of its outputs feeds exactly one QuantizeLinear and nothing else, without
being a graph output. A float tensor inside the group that is a graph output (the
op's output, or a folded Relu's output) therefore keeps the op in float, as
onnxruntime does.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from qprobe.backends.engine.kernels import FOLDABLE_ACTIVATIONS, KERNELS
from qprobe.model.qoperator import SIGNATURES

QOPERATOR_OPS = frozenset(SIGNATURES)  # qprobe.model.qoperator: the one table of QOperator layouts


@dataclass
class GNode:
    name: str
    op_type: str
    domain: str
    inputs: list[str]  # "" for a missing optional input
    outputs: list[str]
    attrs: dict[str, Any]


@dataclass
class GraphView:
    nodes: list[GNode]
    consts: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    dtypes: dict[str, str]
    fixed_batch_one: bool
    opset: int = 13
    producer: dict[str, GNode] = field(default_factory=dict)
    consumers: dict[str, list[GNode]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        for n in self.nodes:
            for o in n.outputs:
                self.producer[o] = n
            for i in n.inputs:
                if i:
                    self.consumers[i].append(n)


def _attr_value(attr: ir.Attr) -> Any:
    v = attr.value
    if isinstance(v, ir.TensorProtocol):
        return v.numpy()
    if isinstance(v, tuple):
        return list(v)
    return v


def read_graph(model: ir.Model) -> GraphView:
    g = model.graph
    consts: dict[str, np.ndarray] = {name: np.asarray(v.const_value.numpy()) for name, v in g.initializers.items()
                                     if v.const_value is not None}
    nodes: list[GNode] = []
    dtypes: dict[str, str] = {}
    for value in [*g.inputs, *g.initializers.values()]:
        if value.dtype is not None and value.name:
            dtypes[value.name] = str(value.dtype.numpy())
    for i, node in enumerate(g):
        attrs = {k: _attr_value(a) for k, a in node.attributes.items()}
        outs = [o.name or "" for o in node.outputs]
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            consts[outs[0]] = _constant_value(attrs)
            continue
        name = node.name or f"{node.op_type}_{i}"
        nodes.append(GNode(name, node.op_type, node.domain if node.domain != "ai.onnx" else "",
                           [v.name or "" if v is not None else "" for v in node.inputs], outs, attrs))
    fixed = any(v.shape is not None and len(v.shape) > 0 and v.shape[0] == 1 for v in g.inputs)
    return GraphView(nodes, consts, [v.name or "" for v in g.inputs if v.name not in consts],
                     [v.name or "" for v in g.outputs], dtypes, fixed, int(model.opset_imports.get("", 13)))


def _constant_value(attrs: dict[str, Any]) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for key, dt in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dt)
    for key, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dt)
    raise ValueError(f"unsupported Constant attributes {sorted(attrs)}")


@dataclass
class Unit:
    """What one engine step executes: a QDQ group, a QOperator node, or a single node."""

    kind: str  # "group" | "qop" | "node"
    anchor: GNode
    dq: dict[int, GNode] = field(default_factory=dict)  # input index -> DequantizeLinear
    q: list[GNode] = field(default_factory=list)  # one QuantizeLinear per output
    folded: list[GNode] = field(default_factory=list)  # Relu/Clip folded into the output clamp


def _is(node: GNode | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain == ""


def _q_chain(view: GraphView, tensor: str, fold: bool) -> tuple[GNode, list[GNode]] | None:
    """The QuantizeLinear that alone consumes ``tensor``, through foldable Relu/Clip nodes."""
    folded: list[GNode] = []
    while True:
        users = view.consumers.get(tensor, [])
        if tensor in view.outputs or len(users) != 1 or users[0].inputs[0] != tensor:
            return None
        user = users[0]
        if _is(user, "QuantizeLinear"):
            if not all(i in view.consts for i in user.inputs[1:] if i):
                return None
            return user, folded
        if not (fold and user.domain == "" and user.op_type in FOLDABLE_ACTIVATIONS):
            return None
        if not all(i in view.consts or _is(view.producer.get(i), "DequantizeLinear") for i in user.inputs[1:] if i):
            return None
        folded.append(user)
        tensor = user.outputs[0]


def _group(view: GraphView, node: GNode) -> Unit | None:
    entry = KERNELS.get(node.op_type)
    if entry is None or entry.build_int is None or node.domain != "":
        return None
    present = [i for i, name in enumerate(node.inputs) if name]
    wanted = present if entry.quantized_inputs is None else [i for i in entry.quantized_inputs if i in present]
    dq: dict[int, GNode] = {}
    for i in present:
        p = view.producer.get(node.inputs[i])
        if p is not None and _is(p, "DequantizeLinear") and all(s in view.consts for s in p.inputs[1:] if s):
            dq[i] = p
        elif i in wanted:
            return None
    if not wanted:
        return None
    qs, folded = [], []
    for out in node.outputs:
        chain = _q_chain(view, out, entry.folds_activation and len(node.outputs) == 1)
        if chain is None:
            return None
        qs.append(chain[0])
        folded = chain[1]
    return Unit("group", node, dq, qs, folded)


def plan_units(view: GraphView) -> list[Unit]:
    """The graph as engine units in topological order (absorbed nodes removed)."""
    absorbed: set[int] = set()
    units: list[Unit] = []
    for node in view.nodes:
        if id(node) in absorbed:
            continue
        unit = _group(view, node)
        if unit is not None:
            absorbed.update(id(n) for n in (*unit.q, *unit.folded))
        elif node.op_type in QOPERATOR_OPS and node.domain in ("", "com.microsoft"):
            unit = Unit("qop", node)
        else:
            unit = Unit("node", node)
        units.append(unit)
    return units
