"""Exporter patterns the quantizer does not write directly: QOperator with weights in
Constant nodes, and ST Edge AI "OE" QDQ with float weights inside QDQ groups and integer
graph I/O (made by rewriting a quantizer's QDQ model)."""

from __future__ import annotations

import numpy as np
import onnx
from onnxruntime.quantization import QuantFormat, QuantType

from models.build import (
    Net,
    calibration,
    float_weights,
    initializers_to_constants,
    integer_io,
    quantize,
    quantize_inputs,
    tensor,
)
from models.parts import Parts


def _residual_net(name: str, seed: int, matmul: bool = False) -> tuple[Net, str]:
    net = Net(name, np.random.default_rng(seed))
    a = net.node("Relu", [net.conv("x", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])], "relu1")
    b = net.node("Relu", [net.conv(a, "conv2", 8, 8, 3, pads=[1, 1, 1, 1])], "relu2")
    s = net.node("Add", [a, b], "add")
    c = net.node("Relu", [net.conv(s, "conv3", 8, 8, 1)], "relu3")
    p = net.node("GlobalAveragePool", [c], "gap")
    f = net.node("Flatten", [p], "flatten", axis=1)
    if matmul:
        f = net.node("MatMul", [f, net.weight("proj_w", [8, 8], 0.4)], "proj")
    out = net.node("Gemm", [f, net.weight("fc_w", [4, 8], 0.3), net.weight("fc_b", [4], 0.1)], "fc", transB=1)
    return net, out


def qoperator_constant(seed: int) -> Parts:
    """QOperator uint8 (QLinearConv, QLinearAdd, QLinearMatMul, QGemm, ...) with every weight,
    scale and zero point in a Constant node instead of an initializer."""
    net, out = _residual_net("qoperator_constant", seed, matmul=True)
    fm = net.model([tensor("x", ["N", 3, 8, 8])], [tensor(out, None)])
    data = calibration({"x": [3, 8, 8]}, 16, seed + 100, 0.0, 1.0)
    q = quantize(fm, data, fmt=QuantFormat.QOperator, activations=QuantType.QUInt8, weights=QuantType.QInt8,
                 per_channel=False)
    return Parts(fm, initializers_to_constants(q), data)


def oe_uint8_io(seed: int) -> Parts:
    """ST Edge AI "OE": uint8 graph input and output codes, float32 Conv/Gemm weights and
    biases read directly inside QDQ groups (DequantizeLinear -> Conv(float W) -> QuantizeLinear)."""
    net, out = _residual_net("oe_uint8_io", seed)
    fm = net.model([tensor("x", ["N", 3, 8, 8])], [tensor(out, None)])
    data = calibration({"x": [3, 8, 8]}, 16, seed + 100, 0.0, 1.0)
    q = quantize(fm, data, activations=QuantType.QUInt8, weights=QuantType.QInt8, per_channel=True)
    oe = integer_io(float_weights(q, fm))
    return Parts(fm, oe, quantize_inputs(oe, data, q))


def oe_float_io(seed: int) -> Parts:
    """OE with float I/O (QuantizeLinear at the input, DequantizeLinear at the output): float
    weights and biases on conv1/conv3/fc, a per-channel DequantizeLinear weight with a float
    bias on conv2, and a MatMul with a float weight (which onnxruntime leaves in float)."""
    net, out = _residual_net("oe_float_io", seed, matmul=True)
    fm = net.model([tensor("x", ["N", 3, 8, 8])], [tensor(out, None)])
    data = calibration({"x": [3, 8, 8]}, 16, seed + 100, -1.0, 1.0)
    q = quantize(fm, data, activations=QuantType.QInt8, weights=QuantType.QInt8, per_channel=True)
    oe = _restore_weight_dq(float_weights(q, fm, ops=("Conv", "Gemm", "MatMul")), q, "conv2")
    return Parts(fm, oe, data)


def _restore_weight_dq(model: onnx.ModelProto, quantized: onnx.ModelProto, node_name: str) -> onnx.ModelProto:
    """Put back the quantized weight (DequantizeLinear) of ``node_name``, keeping its float bias."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    qnode = next(n for n in quantized.graph.node if n.name == node_name)
    node = next(n for n in out.graph.node if n.name == node_name)
    prod = {o: n for n in quantized.graph.node for o in n.output}
    dq = prod[qnode.input[1]]
    node.input[1] = qnode.input[1]
    have = {i.name for i in out.graph.initializer}
    out.graph.initializer.extend(i for i in quantized.graph.initializer if i.name in dq.input and i.name not in have)
    idx = list(out.graph.node).index(node)
    out.graph.node.insert(idx, dq)
    return out
