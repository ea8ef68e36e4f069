"""Probe plans: which intermediate tensors a run exposes as extra graph outputs.

Modes:
  ``outputs``     the graph outputs only (no change to the graph);
  ``op-outputs``  for every compute op, what a target can emit for it: its quantized
                  output (the int8 QuantizeLinear output in a QDQ graph) or, for a float
                  op, its own output; plus the quantized graph inputs and the outputs;
  ``all``         every quantized activation tensor and every float tensor outside QDQ
                  groups (float islands). Float tensors *inside* a QDQ group (a DQ output
                  or the float result before Q) are never probed by a mode: exposing them
                  stops onnxruntime's (and an NPU compiler's) fusion of that group;
  explicit        a comma-separated list of tensor names, any of them.

A probed model keeps every original node and tensor name: probing only appends outputs.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import onnx
import onnx_ir as ir

from qprobe.errors import InputError
from qprobe.model.graph import DQ_OPS, Q_OPS, graph_output_names, is_constant, name_of, sample_tensors
from qprobe.model.loader import model_bytes, remember_bytes, serializing_once
from qprobe.model.quant import QuantIndex
from qprobe.model.shapes import inferred
from qprobe.tensors import ProbePlan

PROBE_MODES = ("outputs", "op-outputs", "all")


def plan_probes(model: ir.Model, index: QuantIndex, probe: str | Sequence[str]) -> ProbePlan:
    """Choose the tensors to expose; explicit names are checked against the model."""
    outputs = graph_output_names(model)
    per_sample = sample_tensors(model)
    if isinstance(probe, str) and probe in PROBE_MODES:
        mode = probe
        wanted = [t for t in _mode_tensors(model, index, probe) if t in per_sample]
    else:
        mode = "explicit"
        names = [n.strip() for n in (probe.split(",") if isinstance(probe, str) else probe) if n.strip()]
        _check_names(model, names)
        constant = [n for n in names if n not in per_sample]
        if constant:
            raise InputError(
                f"tensor {constant[0]!r} carries no per-sample data (it is computed from shapes or constants "
                "only, one value for the whole batch), so it cannot be compared per sample; probe another tensor"
            )
        wanted = names
    ordered = _topological(model, set(wanted) | set(outputs))
    added = tuple(t for t in ordered if t not in outputs)
    return ProbePlan(mode=mode, tensors=tuple(ordered), added_outputs=added)


def _mode_tensors(model: ir.Model, index: QuantIndex, mode: str) -> list[str]:
    if mode == "outputs":
        return []
    names: list[str] = []
    graph_inputs = {name_of(v) for v in model.graph.inputs}
    for node in model.graph:
        if node.op_type in Q_OPS and name_of(node.inputs[0]) in graph_inputs:
            names.append(name_of(node.outputs[0]))
    if mode == "op-outputs":
        for op in index.ops:
            names.extend(t for t in op.observed_outputs if t)
        return names
    names.extend(index.tensors)
    inside = set(index.dequantized)
    for op in index.ops:
        inside.update(o for o, q in zip(op.outputs, op.q_outputs, strict=True) if q and q != o)
    for node in model.graph:
        if node.op_type in Q_OPS | DQ_OPS or node.op_type == "Constant":
            continue
        names.extend(name_of(v) for v in node.outputs if v.name and v.name not in inside and not is_constant(v))
    return names


def _topological(model: ir.Model, names: set[str]) -> list[str]:
    order = [name_of(v) for v in model.graph.inputs if v.name in names]
    for node in model.graph:
        order.extend(name_of(v) for v in node.outputs if v.name in names and v.name not in order)
    return order


def _check_names(model: ir.Model, names: Sequence[str]) -> None:
    known = [name_of(v) for v in model.graph.inputs] + [name_of(v) for n in model.graph for v in n.outputs]
    for n in names:
        if n not in known:
            close = difflib.get_close_matches(n, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `qprobe inspect MODEL` lists them"
            raise InputError(f"tensor {n!r} is not in the model{hint}")


def apply_probe_plan(model: ir.Model, plan: ProbePlan, typed_proto: onnx.ModelProto | None = None, *,
                     declare_types: bool = True) -> ir.Model:
    """A copy of ``model`` whose graph outputs are the original ones plus the probes, each typed
    (and shaped where ONNX shape inference knows it). Nodes, values and metadata are copied
    (``ir.Model.clone``); the weight tensors are shared with ``model``, which is not touched.
    ``typed_proto``: ``shapes.inferred(model_bytes(model))`` when the caller has made it (read,
    not changed). ``declare_types=False``: the added outputs keep the types the model gave them
    (often none), for backends that type outputs themselves (``Capabilities.types_outputs``;
    no shape inference is run)."""
    if not plan.added_outputs:
        return model
    typed: dict[str, onnx.ValueInfoProto] = {}
    if declare_types:
        proto = inferred(model_bytes(model)) if typed_proto is None else typed_proto
        typed = {vi.name: vi for vi in list(proto.graph.value_info) + list(proto.graph.output)}
    probed = model.clone()
    g = probed.graph
    by_name = {name_of(v): v for n in g for v in n.outputs}
    by_name.update({name_of(v): v for v in g.inputs})
    added = [by_name[name] for name in plan.added_outputs]
    for name, v in zip(plan.added_outputs, added, strict=True):
        if name in typed:
            _declare(v, typed[name].type)
        g.outputs.append(v)
    if serializing_once():
        remember_bytes(probed, probed_bytes(model_bytes(model), added))
    return probed


def _declare(v: ir.Value, tp: onnx.TypeProto) -> None:
    """``v``'s type and shape from an inferred type (onnx_ir's own reading of it), where ``v`` has none."""
    if v.type is None and tp.tensor_type.elem_type:
        v.type = ir.serde.deserialize_type_proto_for_type(tp)
    if v.shape is None:
        v.shape = ir.serde.deserialize_type_proto_for_shape(tp)


def probed_bytes(original: bytes, added: Sequence[ir.Value]) -> bytes:
    """The serialized probed copy made from the original model's bytes and its ``added`` outputs,
    without onnx_ir's serializer (a protobuf parse and copy in C++: ~0.3 ms on the TCN where
    ``model_bytes`` takes 5-15 ms). The same model as ``to_proto(probed)``: the added outputs move
    from ``value_info`` (where the original declared them) to the graph outputs, serialized by
    onnx_ir as it would."""
    out = onnx.ModelProto()
    out.ParseFromString(original)
    g = out.graph
    names = {name_of(v) for v in added}
    keep = [vi for vi in g.value_info if vi.name not in names]
    del g.value_info[:]
    g.value_info.extend(keep)
    g.output.extend(ir.serde.serialize_value(v) for v in added)
    return out.SerializeToString()
