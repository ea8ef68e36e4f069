"""The model as localization sees it: ops in topological order, their cut boundaries, their ancestry.

An ``OpNode`` is one candidate culprit: a compute op of the ``QuantIndex`` (its
DequantizeLinear inputs, the op, its QuantizeLinear outputs) or the QuantizeLinear of a
float graph input. ``inputs`` are the tensors an isolated cut of the op is fed with (the
integer codes its DequantizeLinear nodes read, or the float tensor itself outside QDQ
groups); ``outputs`` are what a target can emit for it (its output codes, or its float
output). ``upstream`` is the set of ops it depends on. ``OpGraph`` is pure data: the
state machine plans runs from it without touching the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx_ir as ir

from qprobe.model.graph import DQ_OPS, Q_OPS, graph_output_names, name_of, node_label, sample_tensors
from qprobe.model.quant import QuantIndex


@dataclass(frozen=True)
class OpNode:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    upstream: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OpGraph:
    """Candidate ops in topological order, the graph inputs, and which op feeds each graph output."""

    ops: tuple[OpNode, ...]
    graph_inputs: tuple[str, ...]
    output_ops: Mapping[str, str]  # graph output -> op whose observed output determines it

    def op(self, name: str) -> OpNode:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.ops)

    @property
    def graph_outputs(self) -> tuple[str, ...]:
        return tuple(self.output_ops)

    def position(self, name: str) -> int:
        return self.names.index(name)

    def observed(self) -> tuple[str, ...]:
        """Every op's observed outputs, in topological order."""
        return tuple(t for o in self.ops for t in o.outputs)

    def downstream(self, name: str) -> tuple[OpNode, ...]:
        return tuple(o for o in self.ops if name in o.upstream)

    def producer_of(self, tensor: str) -> OpNode | None:
        return next((o for o in self.ops if tensor in o.outputs), None)


@dataclass(frozen=True)
class OpGroup:
    ops: tuple[str, ...]  # members, topological order
    inputs: tuple[str, ...]  # tensors read from outside the group (fed the reference's values)
    outputs: tuple[str, ...]  # tensors that leave the group (consumed outside, or graph outputs)

    @property
    def name(self) -> str:
        return "+".join(self.ops)


def group_of(graph: OpGraph, names: Sequence[str]) -> OpGroup:
    """The group of ``names`` with its boundary tensors."""
    members = sorted({graph.op(n) for n in names}, key=lambda o: graph.position(o.name))
    inside = {t for o in members for t in o.outputs}
    ins = tuple(dict.fromkeys(t for o in members for t in o.inputs if t not in inside))
    used_outside = {t for o in graph.ops if o not in members for t in o.inputs}
    outs = tuple(t for o in members for t in o.outputs if t in used_outside or t in graph.graph_outputs)
    return OpGroup(tuple(o.name for o in members), ins, outs or members[-1].outputs)


def build_op_graph(model: ir.Model, index: QuantIndex) -> OpGraph:
    """Candidate ops of ``model`` (every compute op with a non-constant input, and input quantizers)."""
    graph_inputs = tuple(name_of(v) for v in model.graph.inputs if v.name not in model.graph.initializers)
    nodes: dict[str, OpNode] = {}
    views = {o.name: o for o in index.ops}
    live = sample_tensors(model)  # shape computations are no candidates and no cut inputs
    for node in model.graph:
        label = node_label(node)
        if label in views and views[label].inputs and any(t in live for t in views[label].outputs):
            v = views[label]
            ins = tuple(q or a for q, a in zip(v.q_inputs, v.inputs, strict=True) if a in live)
            nodes[label] = OpNode(label, v.op_type, _unique(ins), v.observed_outputs)
        elif node.op_type in Q_OPS and name_of(node.inputs[0]) in graph_inputs:
            nodes[label] = OpNode(label, node.op_type, (name_of(node.inputs[0]),), (name_of(node.outputs[0]),))
    deps = _upstream(model, set(nodes))
    ops = tuple(
        OpNode(o.name, o.op_type, o.inputs, o.outputs, frozenset(deps.get(o.name, set()))) for o in nodes.values()
    )
    return OpGraph(ops, graph_inputs, _output_ops(model, set(nodes)))


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _upstream(model: ir.Model, candidates: set[str]) -> dict[str, set[str]]:
    """For each node label: the candidate ops it depends on, transitively."""
    deps: dict[str, set[str]] = {}
    for node in model.graph:
        acc: set[str] = set()
        for v in node.inputs:
            p = v.producer() if v is not None else None
            if p is None:
                continue
            pl = node_label(p)
            acc |= deps.get(pl, set())
            if pl in candidates:
                acc.add(pl)
        deps[node_label(node)] = acc
    return deps


def _output_ops(model: ir.Model, candidates: set[str]) -> dict[str, str]:
    """Graph output -> the candidate op behind it (through Q/DQ nodes), or '' for none."""
    out: dict[str, str] = {}
    values = {name_of(v): v for v in model.graph.outputs}
    for name in graph_output_names(model):
        node = values[name].producer()
        while node is not None and node_label(node) not in candidates and node.op_type in Q_OPS | DQ_OPS:
            src = node.inputs[0]
            node = src.producer() if src is not None else None
        out[name] = node_label(node) if node is not None and node_label(node) in candidates else ""
    return out
