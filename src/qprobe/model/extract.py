"""Subgraph extraction: cut any part of a model into a standalone, runnable model.

``extract_subgraph(model, inputs, outputs)`` keeps exactly the nodes needed to compute
``outputs`` from ``inputs`` and the model's constants (initializers, Constant nodes),
in the original order, with every node and tensor name unchanged. The given inputs
become the cut's graph inputs (their types come from the model or shape inference).

For a QDQ model, ``quant_boundary`` moves a boundary to the integer codes: a tensor
that is a DequantizeLinear output becomes the codes it reads, and a float tensor that a
QuantizeLinear consumes becomes that QuantizeLinear's output, so the cut starts with
int8 codes and the original DequantizeLinear and ends with int8 codes, the form that
``stedgeai --cut-input-tensors/--cut-output-tensors`` and hardware runners handle.

``extract_islands`` merges several cuts into one model of independent islands (one
target run for several isolated ops, plus a prefix that computes some tensors from the
graph inputs). Names are unique, so islands can share nodes. When one island's boundary
input is computed by another island (an op fed by the op before it, or by a prefix),
the island reads a graph input renamed ``<name>__in`` instead (fed with the reference's
values); a node that one island needs fed that way and another island needs computed
(a DequantizeLinear shared by a residual Add and the branch before it) is kept twice,
the fed copy with ``__iso`` appended to its name and outputs. ``MergedIslands`` says which
names each island's inputs and outputs got; everything else keeps its name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper

from qprobe.errors import InputError
from qprobe.model.graph import DQ_OPS, Q_OPS
from qprobe.model.loader import model_from_proto, to_proto
from qprobe.model.quant import QuantIndex, build_quant_index
from qprobe.model.shapes import value_types

RENAME_SUFFIX = "__in"
CLONE_SUFFIX = "__iso"


@dataclass(frozen=True)
class Island:
    """One independent piece of a merged cut: compute ``outputs`` from ``inputs``."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class MergedIslands:
    """A merged model; ``inputs``: boundary tensor -> its graph input name; ``outputs``: per
    island, output tensor -> its graph output name."""

    model: ir.Model
    inputs: dict[str, str]
    outputs: tuple[dict[str, str], ...]


def extract_subgraph(model: ir.Model, inputs: Sequence[str], outputs: Sequence[str]) -> ir.Model:
    """A standalone model computing ``outputs`` from ``inputs`` (and the model's constants)."""
    return Cutter(model).cut(inputs, outputs)


def extract_islands(model: ir.Model, islands: Sequence[Island]) -> MergedIslands:
    """One model made of independent islands, with the names its inputs and outputs got."""
    return Cutter(model).islands(islands)


def quant_boundary(model: ir.Model, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Move a QDQ cut to integer codes: DQ outputs -> the codes they read, Q inputs -> Q outputs."""
    return Cutter(model).quant_boundary(inputs, outputs)


class Cutter:
    """A model prepared once for many cuts (protobuf form, producers, inferred types)."""

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self._quant: QuantIndex | None = None
        proto = to_proto(model)
        self.proto = proto
        g = proto.graph
        self.initializers = {i.name: i for i in g.initializer}
        self.graph_inputs = [i.name for i in g.input if i.name not in self.initializers]
        self.producer: dict[str, int] = {}
        for idx, node in enumerate(g.node):
            for o in node.output:
                if o:
                    self.producer[o] = idx
        self.consumers: dict[str, list[int]] = {}
        for idx, node in enumerate(g.node):
            for t in _node_inputs(node):
                self.consumers.setdefault(t, []).append(idx)
        self.types = _value_infos(proto)

    # -- public -----------------------------------------------------------------------

    def cut(self, inputs: Sequence[str], outputs: Sequence[str]) -> ir.Model:
        ins, outs = self._check(inputs, outputs)
        keep, inits = self._collect(ins, outs)
        nodes = [self.proto.graph.node[i] for i in sorted(keep)]
        return model_from_proto(self._graph(nodes, [(t, t) for t in ins], [(t, t) for t in outs], inits))

    def islands(self, islands: Sequence[Island]) -> MergedIslands:
        if not islands:
            raise InputError("no island to extract")
        parts = []
        for isl in islands:
            ins, outs = self._check(isl.inputs, isl.outputs)
            keep, inits = self._collect(ins, outs)
            parts.append((ins, outs, keep, inits))
        nodes = self.proto.graph.node
        kept = set().union(*(p[2] for p in parts))
        produced = {o for idx in kept for o in nodes[idx].output}
        fed = {t for p in parts for t in p[0] if t in produced}
        taints = [self._tainted(keep, set(ins) & fed) for ins, _o, keep, _i in parts]
        clean = set().union(*(p[2] - t for p, t in zip(parts, taints, strict=True)))
        cloned = set().union(*taints) & clean
        fed_nodes: dict[int, onnx.NodeProto] = {}
        for (ins, _o, _k, _i), taint in zip(parts, taints, strict=True):
            for idx in sorted(taint):
                node = self._fed_copy(nodes[idx], set(ins) & fed, taint & cloned, clone=idx in cloned)
                if fed_nodes.setdefault(idx, node) != node:
                    raise ValueError(f"islands disagree on what feeds node {nodes[idx].name!r}; cut them apart")
        out_nodes: list[onnx.NodeProto] = []
        for idx in sorted(kept):
            if idx in clean:
                out_nodes.append(nodes[idx])
            if idx in fed_nodes:
                out_nodes.append(fed_nodes[idx])
        all_in = _unique(t for p in parts for t in p[0])
        out_names = tuple(
            {o: o + CLONE_SUFFIX if self.producer.get(o) in (t & cloned) else o for o in p[1]}
            for p, t in zip(parts, taints, strict=True)
        )
        all_out = _unique(n for d in out_names for n in d.values())
        inits = set().union(*(p[3] for p in parts))
        in_names = {t: t + RENAME_SUFFIX if t in fed else t for t in all_in}
        proto = self._graph(out_nodes, [(t, in_names[t]) for t in all_in], [(_base(t), t) for t in all_out], inits)
        return MergedIslands(model_from_proto(proto), in_names, out_names)

    def _fed_copy(self, node: onnx.NodeProto, fed: set[str], cloned: set[int], clone: bool) -> onnx.NodeProto:
        """``node`` reading the reference-fed inputs (``__in``) and the fed copies of cloned
        producers (``__iso``); a clone also renames itself and its outputs (``__iso``) so that
        the computed original stays in the model beside it."""
        n = onnx.NodeProto()
        n.CopyFrom(node)
        for i, t in enumerate(n.input):
            if t in fed:
                n.input[i] = t + RENAME_SUFFIX
            elif self.producer.get(t) in cloned:
                n.input[i] = t + CLONE_SUFFIX
        if clone:
            n.name = (n.name or n.op_type) + CLONE_SUFFIX
            for i, t in enumerate(n.output):
                if t:
                    n.output[i] = t + CLONE_SUFFIX
        return n

    def _tainted(self, keep: set[int], fed: set[str]) -> set[int]:
        """Nodes of one island that compute from its reference-fed (renamed) inputs."""
        nodes = self.proto.graph.node
        dirty = set(fed)
        out: set[int] = set()
        for idx in sorted(keep):
            if any(t in dirty for t in _node_inputs(nodes[idx])):
                out.add(idx)
                dirty.update(nodes[idx].output)
        return out

    def quant_boundary(self, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[list[str], list[str]]:
        return _unique(self._codes(t) or t for t in inputs), _unique(self._codes(t) or t for t in outputs)

    def _codes(self, t: str) -> str | None:
        """The integer codes behind float tensor ``t``: what its DequantizeLinear reads, or
        what the QuantizeLinear that is its only consumer writes."""
        nodes = self.proto.graph.node
        p = self.producer.get(t)
        if p is not None and nodes[p].op_type in DQ_OPS and not self._is_const(nodes[p].input[0]):
            return nodes[p].input[0]
        return self._quantized(t)

    def _quantized(self, t: str) -> str | None:
        """The QuantizeLinear output of float tensor ``t`` when a Q is its only consumer."""
        nodes = self.proto.graph.node
        cons = [nodes[c] for c in self.consumers.get(t, [])]
        if len(cons) == 1 and cons[0].op_type in Q_OPS:
            return cons[0].output[0]
        return None

    def is_known(self, name: str) -> bool:
        return name in self.producer or name in self.graph_inputs or name in self.initializers

    # -- checks and the backward walk ---------------------------------------------------

    def _check(self, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[list[str], list[str]]:
        ins, outs = _unique(inputs), _unique(outputs)
        if not outs:
            raise InputError("a cut needs at least one output tensor")
        for t in [*ins, *outs]:
            if not self.is_known(t):
                raise InputError(f"tensor {t!r} is not in the model{self._hint(t)}")
        for t in ins:
            if t in self.initializers or self._is_const(t):
                raise InputError(f"cut input {t!r} is a constant; cut inputs must be activation tensors")
        return ins, outs

    def _hint(self, t: str) -> str:
        known = [*self.graph_inputs, *self.producer]
        close = difflib.get_close_matches(t, known, n=3)
        return f"; did you mean {', '.join(close)}?" if close else "; `qprobe inspect MODEL` lists the tensors"

    def _is_const(self, t: str) -> bool:
        if t in self.initializers:
            return True
        p = self.producer.get(t)
        return p is not None and self.proto.graph.node[p].op_type == "Constant"

    def _collect(self, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[set[int], set[str]]:
        """Node indices and initializers needed for ``outputs`` given ``inputs``."""
        boundary = set(inputs)
        keep: set[int] = set()
        inits: set[str] = set()
        nodes = self.proto.graph.node
        for out in outputs:
            stack, seen = [out], set()
            while stack:
                t = stack.pop()
                if not t or t in seen or t in boundary:
                    continue
                seen.add(t)
                if t in self.initializers:
                    inits.add(t)
                elif t in self.producer:
                    keep.add(self.producer[t])
                    stack.extend(_node_inputs(nodes[self.producer[t]]))
                else:
                    raise InputError(
                        f"output {out!r} is not computable from the cut inputs {sorted(boundary)}: it depends "
                        f"on graph input {t!r}; add {t!r} (or a tensor between it and {out!r}) to the inputs"
                    )
        return keep, inits

    # -- building ---------------------------------------------------------------------

    def _graph(
        self, nodes: Sequence[onnx.NodeProto], inputs: Sequence[tuple[str, str]],
        outputs: Sequence[tuple[str, str]], inits: set[str],
    ) -> onnx.ModelProto:
        """A model of ``nodes``; inputs and outputs are (model tensor, name in the cut) pairs."""
        g = self.proto.graph
        graph = helper.make_graph(
            list(nodes),
            f"{g.name or 'model'}_cut",
            [self._value_info(t, n) for t, n in inputs],
            [self._value_info(t, n) for t, n in outputs],
            [self.initializers[n] for n in sorted(inits)],
        )
        inner = {o for n in nodes for o in n.output} - {n for _t, n in outputs}
        graph.value_info.extend(self._value_info(_base(t), t) for t in sorted(inner) if _base(t) in self.types)
        m = helper.make_model(graph, opset_imports=list(self.proto.opset_import))
        m.ir_version = self.proto.ir_version
        m.functions.extend(self.proto.functions)
        m.producer_name = "qprobe-extract"
        return m

    def _quantized_type(self, tensor: str) -> onnx.ValueInfoProto | None:
        """Codes that shape inference cannot type (outputs of com.microsoft QOperator ops):
        the integer type of their quantization, rank unknown."""
        if self._quant is None:
            self._quant = build_quant_index(self.model)
        q = self._quant.tensors.get(tensor)
        if q is None:
            return None
        return helper.make_tensor_value_info(tensor, helper.np_dtype_to_tensor_dtype(np.dtype(q.dtype)), None)

    def _value_info(self, tensor: str, name: str) -> onnx.ValueInfoProto:
        vi = self.types.get(tensor) or self._quantized_type(tensor)
        if vi is None:
            raise InputError(
                f"the type of tensor {tensor!r} is unknown (no value_info and shape inference could not "
                "find it); add value_info to the model or cut at another tensor"
            )
        out = onnx.ValueInfoProto()
        out.CopyFrom(vi)
        out.name = name
        return out


def _unique(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        n = n.strip()
        if n and n not in out:
            out.append(n)
    return out


def _node_inputs(node: onnx.NodeProto) -> list[str]:
    """A node's inputs plus the outer-scope tensors its subgraphs (If, Loop, Scan) read."""
    names = [t for t in node.input if t]
    for attr in node.attribute:
        for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
            names.extend(_outer_refs(sub))
    return names


def _outer_refs(graph: onnx.GraphProto) -> list[str]:
    local = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    refs: list[str] = []
    for node in graph.node:
        refs.extend(t for t in _node_inputs(node) if t not in local)
        local.update(node.output)
    return refs


def _base(name: str) -> str:
    for suffix in (RENAME_SUFFIX, CLONE_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _value_infos(proto: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every tensor's declared or inferred type (declarations win), initializers included."""
    types = value_types(proto)
    for init in proto.graph.initializer:
        types.setdefault(init.name, helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return types
