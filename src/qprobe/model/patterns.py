"""Export patterns that change what a runtime computes: float weights inside QDQ groups.

ST Edge AI's "OE" exports and TFLite-derived QDQ models keep some weights in float32 inside
a QDQ group (``DequantizeLinear -> Conv(float W, float B) -> QuantizeLinear``).
onnxruntime's optimizer then quantizes those weights itself, so ``ort-fused`` computes a
different model than ``ort``, the board, OpenVINO or TFLite.

What onnxruntime 1.32 does (``WeightBiasQuantization``,
onnxruntime/core/optimizer/qdq_transformer/weight_bias_quantization.cc, ``ApplyImpl``;
a Level 1 transformer, so ORT_ENABLE_BASIC and above, skipped with
``session.disable_quant_qdq=1``; checked on its optimized model, tests/engine/test_float_weights.py):

* Ops: ``Conv``, ``ConvTranspose`` and ``Gemm`` only (not MatMul: a float MatMul weight
  stays float and the MatMul runs in float32).
* The node's input 0 must come from a DequantizeLinear with a scalar scale, and its
  output must reach a QuantizeLinear through a chain of single consumers, optionally
  through Relu/Clip (graph outputs are not consumers, so a float output that is also a
  graph output does not stop it).
* A float32 weight initializer (Constant nodes count: onnxruntime turns them into
  initializers) is quantized **per tensor, asymmetric, int8**:
  ``lo = min(min(w), 0)``, ``hi = max(max(w), 0)``, ``s = fl32((hi - lo) / 255)`` (1.0 when
  ``hi == lo``), ``z = RNE(clamp(fl32(-128 - fl32(lo / s)), -128, 127))``,
  ``q = sat(RNE(fl32(w / s)) + z)`` (MLAS QuantizeLinear during constant folding), then
  dequantized again. The header of that file calls this "symmetric"; the code calls
  ``GetQuantizationParameter`` with its default ``Symmetric = false``
  (onnxruntime/core/util/qmath.h), and the optimized model shows zero points like -17.
* A float bias (a 1-D initializer; a bias that is not an initializer, e.g. one that
  already has a DequantizeLinear, makes onnxruntime skip the node entirely) is quantized
  to int32 with ``s_b = fl32(s_x * s_w)`` (per channel when the weight's
  DequantizeLinear is per channel on axis 0 for Conv, axis 1 - or 0 with transB - for
  Gemm, with a scale of the bias's length and no block_size), ``b_q = int32(RNE(fl32(b / s_b)))``
  and zero point 0. A node whose weight is already quantized and has no bias is left alone.

After that rewrite the QDQ selectors fuse the group into QLinearConv / QGemm as usual.
``float_weights_in_qdq(model)`` names the nodes this applies to; the rule itself
(``weight_bias_plan``) works on any graph that answers ``GraphQuery``, so the engine's
``engine:onnxruntime`` profile applies exactly the same rule (knob ``float_weights``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnx_ir as ir

from qprobe.model.graph import const_array, name_of

WEIGHT_QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm")


@dataclass(frozen=True)
class NodeInfo:
    name: str
    op_type: str
    inputs: tuple[str, ...]  # "" for a missing optional input
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]


class GraphQuery(Protocol):
    def producer(self, tensor: str) -> NodeInfo | None: ...
    def consumers(self, tensor: str) -> Sequence[NodeInfo]: ...
    def const(self, tensor: str) -> np.ndarray | None: ...


@dataclass(frozen=True)
class WeightBiasPlan:
    """What onnxruntime will do to one node: quantize its float weight, its float bias, or both."""

    node: str
    input_scale: str  # the scale tensor of input 0's DequantizeLinear
    quantize_weight: bool
    quantize_bias: bool
    weight_dq: NodeInfo | None  # the weight's DequantizeLinear, when the weight is already quantized


def _scalar(value: np.ndarray | None) -> bool:
    return value is not None and value.size == 1 and value.ndim <= 1


def _reaches_quantize(node: NodeInfo, g: GraphQuery) -> bool:
    current = node
    while True:
        if len(current.outputs) != 1:
            return False
        users = g.consumers(current.outputs[0])
        if len(users) != 1:
            return False
        if users[0].op_type == "QuantizeLinear":
            return True
        if users[0].op_type not in ("Relu", "Clip"):
            return False
        current = users[0]


def _per_channel_ok(node: NodeInfo, dq: NodeInfo, g: GraphQuery, bias_size: int) -> bool:
    scale = g.const(dq.inputs[1])
    if scale is None or scale.ndim != 1 or scale.size != bias_size or int(dq.attrs.get("block_size", 0)):
        return False
    w = g.const(dq.inputs[0])
    axis = int(dq.attrs.get("axis", 1))
    if axis < 0:
        if w is None:
            return False
        axis += w.ndim
    expected = (0 if int(node.attrs.get("transB", 0)) else 1) if node.op_type == "Gemm" else 0
    return axis == expected


def weight_bias_plan(node: NodeInfo, g: GraphQuery) -> WeightBiasPlan | None:
    """onnxruntime's WeightBiasQuantization decision for one node (None: left alone)."""
    if node.op_type not in WEIGHT_QUANTIZED_OPS or len(node.inputs) < 2:
        return None
    dq0 = g.producer(node.inputs[0])
    if dq0 is None or dq0.op_type != "DequantizeLinear" or not _scalar(g.const(dq0.inputs[1])):
        return None
    if not _reaches_quantize(node, g):
        return None
    dq1 = g.producer(node.inputs[1])
    if dq1 is not None and dq1.op_type != "DequantizeLinear":
        return None
    if dq1 is None:
        w = g.const(node.inputs[1])
        if w is None or w.dtype != np.float32:
            return None
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else ""
    bias_value = g.const(bias) if bias else None
    if bias and (bias_value is None or g.producer(bias) is not None or bias_value.ndim != 1):
        return None
    if dq1 is not None and not bias:
        return None
    if dq1 is not None and not _scalar(g.const(dq1.inputs[1])) and not _per_channel_ok(
            node, dq1, g, int(bias_value.size) if bias_value is not None else -1):
        return None
    return WeightBiasPlan(node.name, dq0.inputs[1], dq1 is None, bool(bias), dq1)


class _IrQuery:
    """``GraphQuery`` over an onnx_ir model (Constant nodes count as constants)."""

    def __init__(self, model: ir.Model) -> None:
        self._producer: dict[str, NodeInfo] = {}
        self._consumers: dict[str, list[NodeInfo]] = {}
        self._values: dict[str, ir.Value] = dict(model.graph.initializers)
        self.nodes: list[NodeInfo] = []
        for node in model.graph:
            info = NodeInfo(node.name or "", node.op_type, tuple(name_of(v) for v in node.inputs),
                            tuple(name_of(v) for v in node.outputs), _attrs(node))
            for v in node.outputs:
                self._values[name_of(v)] = v
            if node.op_type == "Constant":
                continue
            self.nodes.append(info)
            for o in info.outputs:
                self._producer[o] = info
            for i in info.inputs:
                if i:
                    self._consumers.setdefault(i, []).append(info)

    def producer(self, tensor: str) -> NodeInfo | None:
        return self._producer.get(tensor)

    def consumers(self, tensor: str) -> Sequence[NodeInfo]:
        return self._consumers.get(tensor, [])

    def const(self, tensor: str) -> np.ndarray | None:
        return const_array(self._values.get(tensor))


def _attrs(node: ir.Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, a in node.attributes.items():
        v = a.value
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def float_weight_plans(model: ir.Model) -> list[WeightBiasPlan]:
    g = _IrQuery(model)
    return [p for n in g.nodes if (p := weight_bias_plan(n, g)) is not None]


def float_weights_in_qdq(model: ir.Model) -> list[str]:
    """Nodes whose float weight or bias onnxruntime quantizes itself (``ort-fused`` then
    differs from ``ort``); empty for models the quantizer wrote."""
    return [p.node for p in float_weight_plans(model)]
