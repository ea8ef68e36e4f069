"""The engine's view of one localized op: its ``OpSpec``, output clamp and numerics class.

``group_spec(cut, node)`` reads a one-op cut (int8 codes in, the op's DequantizeLinear
nodes, the op, its QuantizeLinear, codes out) the way the engine compiles it
(``read_graph`` + ``plan_units``; QOperator nodes through ``qoperator.lower``), so that
explain can build the engine's own kernels for the op under any ``Numerics``. The spec's
numerics are a placeholder; ``GroupSpec.with_numerics`` sets a hypothesis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.backends.engine.graph import GNode, GraphView, Unit, plan_units, read_graph
from qprobe.backends.engine.kernels import KERNELS
from qprobe.backends.engine.kernels.base import Operand, OpSpec, QType
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.qoperator import lower
from qprobe.errors import InputError, UnsupportedOpError
from qprobe.tensors import ONNX_INT_TYPES

QOPERATOR_CLASS = {"Concat": "concat"}


@dataclass(frozen=True)
class GroupSpec:
    """One quantized op as the engine builds it."""

    spec: OpSpec
    op_class: str
    clamp: tuple[int, int]  # the output clamp in codes: type range and folded Relu/Clip

    def with_numerics(self, num: Numerics) -> OpSpec:
        return dataclasses.replace(self.spec, numerics=num, info=dict(self.spec.info))

    @property
    def quantized_inputs(self) -> list[tuple[int, QType]]:
        """The quantized data operands: activations, and for Add/Sub/Mul/Concat constants too (a
        constant operand is data there; for Conv/Gemm a constant is a weight)."""
        data = self.op_class in ("eltwise", "mul", "concat")
        return [(i, op.qtype) for i, op in enumerate(self.spec.inputs)
                if op.qtype is not None and (op.const is None or data)]

    def operand(self, i: int, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Operand ``i``'s codes: the observed array, or the constant."""
        op = self.spec.inputs[i]
        return np.asarray(inputs[op.name] if op.const is None else op.const)


def _qtype(view: GraphView, node: GNode, codes: str) -> QType:
    scale = view.consts[node.inputs[1]]
    zp = view.consts.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if zp is not None:
        dtype = str(zp.dtype)
    elif "output_dtype" in node.attrs:
        dtype = ONNX_INT_TYPES.get(int(node.attrs["output_dtype"]), "uint8")
    else:
        dtype = str(view.consts[codes].dtype) if codes in view.consts else view.dtypes.get(codes, "uint8")
    return QType.make(scale, zp, dtype, int(node.attrs.get("axis", 1)))


def _clamp_bound(view: GraphView, name: str) -> float:
    producer = view.producer.get(name)
    if producer is not None:  # a DequantizeLinear of a constant
        q = _qtype(view, producer, producer.inputs[0])
        return float((int(view.consts[producer.inputs[0]].reshape(-1)[0]) - q.z) * np.float64(q.s))
    return float(view.consts[name].reshape(-1)[0])


def _clamp(view: GraphView, unit: Unit, out: QType) -> tuple[int, int]:
    lo, hi = out.qmin, out.qmax
    for node in unit.folded:
        bounds = [0.0, np.inf] if node.op_type == "Relu" else [float(node.attrs.get("min", -np.inf)),
                                                               float(node.attrs.get("max", np.inf))]
        for k in (1, 2):
            if node.op_type == "Clip" and len(node.inputs) > k and node.inputs[k]:
                bounds[k - 1] = _clamp_bound(view, node.inputs[k])
        if bounds[0] > -np.inf:
            lo = max(lo, out.quantize_exact(bounds[0]))
        if bounds[1] < np.inf:
            hi = min(hi, out.quantize_exact(bounds[1]))
    return lo, hi


def _group(view: GraphView, unit: Unit) -> GroupSpec:
    node = unit.anchor
    ops: list[Operand] = []
    for i, name in enumerate(node.inputs):
        dq = unit.dq.get(i)
        if dq is not None:
            codes = dq.inputs[0]
            ops.append(Operand(codes, view.consts.get(codes), _qtype(view, dq, codes)))
        else:
            ops.append(Operand(name, view.consts.get(name) if name else None))
    out = _qtype(view, unit.q[0], "")
    spec = OpSpec(node.name, node.op_type, node.attrs, tuple(ops), (unit.q[0].outputs[0],), (out,), Numerics(),
                  {"fixed_batch_one": view.fixed_batch_one, "opset": view.opset})
    return GroupSpec(spec, KERNELS[node.op_type].op_class, _clamp(view, unit, out))


def _qoperator(view: GraphView, unit: Unit) -> GroupSpec:
    node = unit.anchor
    op, attrs, ops, out_q = lower(view, node, view.consts)
    if out_q is None or op not in KERNELS:
        raise InputError(f"node {node.name!r} ({node.op_type}) has no quantized output; explain needs one")
    spec = OpSpec(node.name, op, attrs, ops, tuple(node.outputs[:1]), (out_q,), Numerics(), {})
    return GroupSpec(spec, KERNELS[op].op_class, (out_q.qmin, out_q.qmax))


def group_specs(model: ir.Model) -> dict[str, GroupSpec]:
    """Every quantized op of ``model`` the engine groups (QDQ groups and QOperator nodes), by node."""
    view = read_graph(model)
    out: dict[str, GroupSpec] = {}
    for unit in plan_units(view):
        if unit.kind == "group" and unit.q:
            out[unit.anchor.name] = _group(view, unit)
        elif unit.kind == "qop":
            try:
                out[unit.anchor.name] = _qoperator(view, unit)
            except (InputError, UnsupportedOpError):
                continue
    return out


def group_spec(cut: ir.Model, node: str) -> GroupSpec:
    """The engine spec of ``node`` in ``cut`` (a QDQ group or a QOperator node)."""
    found = group_specs(cut).get(node)
    if found is None:
        raise InputError(
            f"node {node!r} is not a quantized op the engine groups (DequantizeLinear inputs, one "
            "QuantizeLinear output, or a QOperator node); explain needs its integer codes in and out"
        )
    return found
