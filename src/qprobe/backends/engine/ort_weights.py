"""onnxruntime's quantization of float weights inside QDQ groups, as a graph-view rewrite.

Knob ``float_weights`` (classes ``conv`` and ``gemm``): ``ort_quantize`` applies, at
compile time, what onnxruntime's optimizer does to a Conv/ConvTranspose/Gemm that reads a
float32 weight or bias inside a QDQ group (the rule and the formulas are documented in
``qprobe.model.patterns``): the weight becomes int8 per-tensor asymmetric codes behind a
new DequantizeLinear, the bias int32 codes at scale ``fl32(s_x * s_w)``; the group then
runs as the integer kernel it now is. ``float`` (the default) leaves the weights as the
model has them, so the op runs in float32 as onnxruntime's unfused path computes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from qprobe.backends.engine.graph import GNode, GraphView
from qprobe.model.patterns import NodeInfo, WeightBiasPlan, weight_bias_plan

F32 = np.float32


class _ViewQuery:
    def __init__(self, view: GraphView) -> None:
        self.view = view

    @staticmethod
    def info(node: GNode) -> NodeInfo:
        return NodeInfo(node.name, node.op_type, tuple(node.inputs), tuple(node.outputs), node.attrs)

    def producer(self, tensor: str) -> NodeInfo | None:
        p = self.view.producer.get(tensor)
        return None if p is None else self.info(p)

    def consumers(self, tensor: str) -> Sequence[NodeInfo]:
        return [self.info(n) for n in self.view.consumers.get(tensor, [])]

    def const(self, tensor: str) -> np.ndarray | None:
        return self.view.consts.get(tensor)


def weight_params(w: np.ndarray) -> tuple[np.float32, np.int8]:
    """onnxruntime's ``GetQuantizationParameter<int8_t>`` (asymmetric): scale and zero point."""
    lo = min(F32(np.min(w)), F32(0))
    hi = max(F32(np.max(w)), F32(0))
    scale = F32(1.0) if hi == lo else F32(np.subtract(hi, lo, dtype=F32) / F32(255))
    initial = F32(F32(-128) - F32(lo / scale))
    return scale, np.int8(np.rint(min(max(initial, F32(-128)), F32(127))))


def quantize_weight(w: np.ndarray, scale: np.float32, zp: np.int8) -> np.ndarray:
    """MLAS QuantizeLinear: ``sat(RNE(fl32(w / s)) + z)`` (clamped in float before rounding)."""
    v = np.divide(np.asarray(w, F32), scale, dtype=F32)
    v = np.clip(v, F32(-128) - F32(zp), F32(127) - F32(zp))
    return (np.rint(v) + F32(zp)).astype(np.int8)


def quantize_bias(b: np.ndarray, bias_scale: np.ndarray) -> np.ndarray:
    """``Cast<int32>(Round(fl32(b / s_b)))`` as the rewrite's Div/Round/Cast nodes fold it."""
    return np.rint(np.divide(np.asarray(b, F32), bias_scale, dtype=F32)).astype(np.int32)


def _dq(name: str, codes: str, scale: str, zp: str | None, axis: int | None) -> GNode:
    attrs = {} if axis is None else {"axis": axis}
    return GNode(name, "DequantizeLinear", "", [codes, scale] + ([zp] if zp else []), [f"{name}_out"], attrs)


def _apply(view: GraphView, node: GNode, plan: WeightBiasPlan, consts: dict[str, np.ndarray],
           notes: dict[str, str]) -> tuple[GNode, list[GNode]]:
    new_nodes: list[GNode] = []
    inputs = list(node.inputs)
    base = f"{node.name}::ort"
    if plan.quantize_weight:
        w = view.consts[node.inputs[1]]
        scale, zp = weight_params(w)
        consts.update({f"{base}_weight_q": quantize_weight(w, scale, zp), f"{base}_weight_scale": np.asarray(scale),
                       f"{base}_weight_zp": np.asarray(zp)})
        dq = _dq(f"{base}_weight_dq", f"{base}_weight_q", f"{base}_weight_scale", f"{base}_weight_zp", None)
        new_nodes.append(dq)
        inputs[1] = dq.outputs[0]
        w_scale = np.asarray(scale)
        notes[node.name] = f"float weight quantized as onnxruntime does: int8 per tensor, scale {float(scale):.6g}, " \
                           f"zero point {int(zp)}"
    else:
        assert plan.weight_dq is not None
        w_scale = view.consts[plan.weight_dq.inputs[1]]
    if plan.quantize_bias:
        bias_scale = np.multiply(view.consts[plan.input_scale], w_scale, dtype=F32)
        consts.update({f"{base}_bias_int32": quantize_bias(view.consts[node.inputs[2]], bias_scale),
                       f"{base}_bias_scale": bias_scale})
        per_channel = bias_scale.size > 1
        dq = _dq(f"{base}_bias_dq", f"{base}_bias_int32", f"{base}_bias_scale", None, 0 if per_channel else None)
        new_nodes.append(dq)
        inputs[2] = dq.outputs[0]
        notes[node.name] = (notes.get(node.name, "") + "; " if node.name in notes else "") + \
            "float bias quantized as onnxruntime does: int32 at scale s_x * s_w"
    return replace(node, inputs=inputs), new_nodes


def quantize_float_weights(view: GraphView, wanted: Callable[[GNode], bool],
                           notes: dict[str, str]) -> GraphView:
    """The view with onnxruntime's weight/bias quantization applied to the nodes ``wanted`` selects."""
    query = _ViewQuery(view)
    consts = dict(view.consts)
    nodes: list[GNode] = []
    changed = False
    for node in view.nodes:
        plan = weight_bias_plan(query.info(node), query) if wanted(node) else None
        if plan is None:
            nodes.append(node)
            continue
        node, extra = _apply(view, node, plan, consts, notes)
        nodes.extend([*extra, node])
        changed = True
    if not changed:
        return view
    dtypes = {**view.dtypes, **{k: str(v.dtype) for k, v in consts.items() if k not in view.consts}}
    return replace(view, nodes=nodes, consts=consts, dtypes=dtypes, producer={}, consumers=defaultdict(list))
