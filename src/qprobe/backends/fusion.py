"""Fusion maps: which ONNX nodes each kernel a runtime executed covers, and at which precision.

A runtime that fuses (OpenVINO's CPU plugin, an onnxruntime execution provider that
compiles partitions) reports its executed kernels with the names of the ops they came from.
Those names are the runtime's own (OpenVINO's friendly names, copies made while compiling
such as ``Subtract_91_0``, onnxruntime's ``name/duplicated`` nodes); ``origin`` maps them to
qprobe's node names. This module is pure: the backends extract plain ``RawKernel`` records
from their runtime and call ``build_fusion_map``; nothing here imports a runtime.

``FusionMap.groups(model)`` is what ``Backend.fusion_groups`` returns: the ONNX nodes of
kernels that run more than one compute op (Q/DQ nodes and constants do not count), merged
when two kernels share a compute node (a node split over two kernels cannot be isolated
from either), each group in graph order, groups ordered by their first node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

from qprobe import serde
from qprobe.errors import BackendError
from qprobe.model.graph import DQ_OPS, Q_OPS, is_constant

SCHEMA = "qprobe.fusion-map/1"
# copies and parts a runtime derives from an op: ``Subtract_91_0``, ``c1_DequantizeLinear/duplicated``,
# ``q_proj/transpose_b``, ``gemm/WithoutBiases/DequantizationSubtract``
_COPY_SUFFIX = re.compile(r"^(.+?)(_\d+|/[^/]*)$")
_NOT_COMPUTE = Q_OPS | DQ_OPS | {"Constant"}


@dataclass(frozen=True)
class RawKernel:
    """One executed kernel as the runtime reports it (names are the runtime's)."""

    name: str
    layer_type: str
    precision: str
    output_precisions: str
    original_names: tuple[str, ...]


@dataclass(frozen=True)
class Kernel:
    name: str
    layer_type: str
    precision: str
    output_precisions: str
    nodes: tuple[str, ...]
    absorbed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.layer_type, "precision": self.precision,
            "output_precisions": self.output_precisions, "nodes": list(self.nodes), "absorbed": list(self.absorbed),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Kernel:
        return cls(
            str(d["name"]), str(d["type"]), str(d["precision"]), str(d["output_precisions"]),
            tuple(d["nodes"]), tuple(d.get("absorbed", ())),
        )


@dataclass(frozen=True)
class FusionMap:
    """Executed kernels with the ONNX nodes they cover; ``absent``: compute nodes no kernel
    names (folded away, or fused by a pass that dropped their name); ``unresolved``: runtime
    names that map to no ONNX node (ops the runtime created itself)."""

    backend: str
    kernels: tuple[Kernel, ...]
    absent: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "backend": self.backend, "kernels": [k.to_json() for k in self.kernels],
            "absent": list(self.absent), "unresolved": list(self.unresolved), "notes": list(self.notes),
        }

    def dumps(self) -> str:
        return serde.dumps(self.to_json(), indent=None)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FusionMap:
        if d.get("schema") != SCHEMA:
            raise BackendError(f"not a fusion map: schema {d.get('schema')!r}, expected {SCHEMA!r}")
        return cls(
            str(d["backend"]), tuple(Kernel.from_json(k) for k in d["kernels"]),
            tuple(d.get("absent", ())), tuple(d.get("unresolved", ())), tuple(d.get("notes", ())),
        )

    @classmethod
    def loads(cls, text: str) -> FusionMap:
        return cls.from_json(serde.loads(text, SCHEMA, "a fusion map"))

    def groups(self, model: ir.Model) -> list[tuple[str, ...]]:
        return merged_groups([(*k.nodes, *k.absorbed) for k in self.kernels], model)


def resolve(name: str, origin: Mapping[str, str]) -> str | None:
    """The ONNX node a runtime name stands for: exact, else with derived suffixes stripped one by one."""
    while True:
        if name in origin:
            return origin[name]
        m = _COPY_SUFFIX.match(name)
        if not m:
            return None
        name = m.group(1)


def build_fusion_map(backend: str, raw: Iterable[RawKernel], origin: Mapping[str, str], model: ir.Model) -> FusionMap:
    """Resolve each kernel's names to ONNX nodes; attach absent compute nodes to the kernel
    that holds all their producers and consumers (a pattern fused under another op's name,
    e.g. OpenVINO's Swish fusion of Sigmoid -> Mul keeps only the Mul's name)."""
    kernels: list[Kernel] = []
    unresolved: list[str] = []
    pos = _pos(model)
    for rk in raw:
        nodes: list[str] = []
        for n in rk.original_names:
            node = resolve(n, origin)
            if node is None:
                unresolved.append(n)
            elif node not in nodes:
                nodes.append(node)
        if nodes:
            kernels.append(Kernel(rk.name, rk.layer_type, rk.precision, rk.output_precisions, _in_order(nodes, pos)))
    covered = {n for k in kernels for n in k.nodes}
    absent = [n.name or "" for n in model.graph if _is_compute(n) and n.name not in covered]
    kernels, still_absent = _absorb(kernels, absent, model)
    return FusionMap(backend, tuple(kernels), tuple(still_absent), tuple(dict.fromkeys(unresolved)))


def merged_groups(groups: Sequence[Sequence[str]], model: ir.Model) -> list[tuple[str, ...]]:
    """Groups of more than one compute node, merged where they share a compute node."""
    nodes = {n.name: n for n in model.graph}
    merged: list[tuple[set[str], set[str]]] = []  # (members, compute members)
    for g in groups:
        members = {n for n in g if n in nodes}
        compute = {n for n in members if _is_compute(nodes[n])}
        for other in [m for m in merged if m[1] & compute]:
            members |= other[0]
            compute |= other[1]
            merged.remove(other)
        merged.append((members, compute))
    pos = _pos(model)
    out = [_in_order(m, pos) for m, c in merged if len(c) > 1]
    return sorted(out, key=lambda g: pos[g[0]])


def _absorb(kernels: list[Kernel], absent: list[str], model: ir.Model) -> tuple[list[Kernel], list[str]]:
    nodes = {n.name: n for n in model.graph}
    left: list[str] = []
    for name in absent:
        neighbours = _neighbours(nodes[name])
        home = next((i for i, k in enumerate(kernels) if neighbours and neighbours <= set(k.nodes)), None)
        if home is None:
            left.append(name)
            continue
        k = kernels[home]
        kernels[home] = Kernel(k.name, k.layer_type, k.precision, k.output_precisions, k.nodes, (*k.absorbed, name))
    return kernels, left


def _neighbours(node: ir.Node) -> set[str]:
    """Names of the non-constant producers and of the consumers of ``node``."""
    out: set[str] = set()
    for v in node.inputs:
        p = v.producer() if v is not None else None
        if p is not None and p.op_type != "Constant":
            out.add(p.name or "")
    for v in node.outputs:
        out |= {c.name or "" for c, _ in v.uses()}
    return out


def _is_compute(node: ir.Node) -> bool:
    """A node that computes on activations: not Q/DQ/Constant, and fed by a non-constant value."""
    return node.op_type not in _NOT_COMPUTE and not all(is_constant(v) for v in node.inputs)


def _pos(model: ir.Model) -> dict[str, int]:
    return {n.name or "": i for i, n in enumerate(model.graph)}


def _in_order(names: Iterable[str], pos: Mapping[str, int]) -> tuple[str, ...]:
    return tuple(sorted(set(names), key=lambda n: pos.get(n, len(pos))))
