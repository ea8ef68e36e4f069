"""Float islands between quantized convolutions: normalizations, GELU via Erf with masks
(Where/Greater/Less/Equal/Neg/Exp/Sqrt/Pow/Expand), and a LayerNorm decomposed into
ReduceMean/Sub/Pow/Sqrt/Div as pre-opset-17 exporters write it (onnxruntime's optimizer fuses it)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from models.build import Net, calibration, quantize, tensor
from models.parts import Parts

# only these are quantized; everything else stays float between a DequantizeLinear and a QuantizeLinear
_QUANTIZED = ["Conv", "Gemm", "GlobalAveragePool", "Flatten", "MaxPool"]


def _head(net: Net, x: str, channels: int, classes: int) -> str:
    p = net.node("GlobalAveragePool", [x], "gap")
    f = net.node("Flatten", [p], "flatten", axis=1)
    return net.node("Gemm", [f, net.weight("fc_w", [classes, channels], 0.3), net.weight("fc_b", [classes], 0.1)],
                    "fc", transB=1)


def _finish(net: Net, out: str, shape: list[int], seed: int, opset: int = 17) -> Parts:
    fm = net.model([tensor("x", ["N", *shape])], [tensor(out, None)], opset=opset)
    data = calibration({"x": shape}, 16, seed + 100)
    return Parts(fm, quantize(fm, data, op_types_to_quantize=_QUANTIZED), data)


def norm_islands(seed: int) -> Parts:
    """Conv -> BatchNormalization -> Relu and Conv -> InstanceNormalization -> Relu in float."""
    net = Net("norm_islands", np.random.default_rng(seed))
    c = net.conv("x", "conv1", 3, 8, 3, pads=[1, 1, 1, 1], bias=False)
    bn = [net.init(f"bn_{k}", v) for k, v in (("scale", 1 + 0.2 * net.rng.standard_normal(8)),
                                              ("bias", 0.1 * net.rng.standard_normal(8)),
                                              ("mean", 0.1 * net.rng.standard_normal(8)),
                                              ("var", net.rng.uniform(0.5, 1.5, 8)))]
    c = net.node("Relu", [net.node("BatchNormalization", [c, *bn], "bn", epsilon=1e-5)], "bn_relu")
    c = net.conv(c, "conv2", 8, 8, 3, pads=[1, 1, 1, 1])
    inorm = [net.init("in_scale", 1 + 0.2 * net.rng.standard_normal(8)),
             net.init("in_bias", 0.1 * net.rng.standard_normal(8))]
    c = net.node("Relu", [net.node("InstanceNormalization", [c, *inorm], "instnorm", epsilon=1e-5)], "in_relu")
    return _finish(net, _head(net, c, 8, 3), [3, 8, 8], seed)


def float_math(seed: int) -> Parts:
    """GELU via Erf, then masks and float math between two quantized convs: Where, Greater,
    Less, Equal, Neg, Exp, Pow, Sqrt, and an Expand to a shape computed with Shape."""
    net = Net("float_math", np.random.default_rng(seed))
    c = net.conv("x", "conv1", 3, 4, 3, pads=[1, 1, 1, 1])
    erf = net.node("Erf", [net.node("Div", [c, net.init("sqrt2", np.sqrt(2.0))], "gelu_div")], "gelu_erf")
    g = net.node("Mul", [net.node("Mul", [c, net.node("Add", [erf, net.init("one", 1.0)], "gelu_add")], "gelu_mul"),
                         net.init("half", 0.5)], "gelu")
    w1 = net.node("Where", [net.node("Greater", [g, net.init("t_hi", 0.1)], "greater"), g,
                            net.node("Neg", [g], "neg")], "where_abs")
    w2 = net.node("Where", [net.node("Less", [g, net.init("t_lo", -0.05)], "less"), net.node("Exp", [g], "exp"), w1],
                  "where_exp")
    sq = net.node("Sqrt", [net.node("Add", [net.node("Pow", [w2, net.init("two", 2.0)], "pow"),
                                            net.init("eps", 1e-3)], "pow_eps")], "sqrt")
    bias = net.node("Expand", [net.init("chan_bias", 0.1 * net.rng.standard_normal((1, 4, 1, 1))),
                               net.node("Shape", [sq], "shape")], "expand")
    t = net.node("Add", [sq, bias], "add_bias")
    hit = net.node("Cast", [net.node("Greater", [t, net.init("t_one", 1.0)], "greater_one")], "cast",
                   to=TensorProto.INT32)
    eq = net.node("Equal", [hit, net.init("one_i", 1, np.int32)], "equal")
    t = net.node("Where", [eq, t, net.node("Mul", [t, net.init("damp", 0.5)], "damp")], "where_damp")
    c = net.conv(t, "conv2", 4, 8, 3, pads=[1, 1, 1, 1])
    return _finish(net, _head(net, c, 8, 3), [3, 8, 8], seed)


def layernorm_decomposed(seed: int) -> Parts:
    """LayerNorm over channels of a (N, T, C) sequence, decomposed: ReduceMean, Sub, Pow,
    ReduceMean, Add, Sqrt, Div, Mul, Add; then a ReduceSum (keepdims=0, axes as input)."""
    net = Net("layernorm_decomposed", np.random.default_rng(seed))
    h = net.node("MatMul", ["x", net.weight("w_in", [8, 12], 0.4)], "proj_in")
    mean = net.node("ReduceMean", [h], "ln_mean", axes=[-1], keepdims=1)
    d = net.node("Sub", [h, mean], "ln_sub")
    var = net.node("ReduceMean", [net.node("Pow", [d, net.init("ln_two", 2.0)], "ln_pow")], "ln_var", axes=[-1],
                   keepdims=1)
    std = net.node("Sqrt", [net.node("Add", [var, net.init("ln_eps", 1e-5)], "ln_add_eps")], "ln_sqrt")
    n = net.node("Div", [d, std], "ln_div")
    n = net.node("Add", [net.node("Mul", [n, net.init("ln_gamma", 1 + 0.1 * net.rng.standard_normal(12))], "ln_mul"),
                         net.init("ln_beta", 0.1 * net.rng.standard_normal(12))], "ln_out")
    h2 = net.node("MatMul", [n, net.weight("w_mid", [12, 6], 0.4)], "proj_mid")
    s = net.node("ReduceSum", [h2, net.init("sum_axes", [1], np.int64)], "time_sum", keepdims=0)
    out = net.node("Gemm", [s, net.weight("fc_w", [3, 6], 0.3), net.weight("fc_b", [3], 0.1)], "fc", transB=1)
    fm = net.model([tensor("x", ["N", 10, 8])], [tensor(out, None)])
    data = calibration({"x": [10, 8]}, 16, seed + 100)
    return Parts(fm, quantize(fm, data, op_types_to_quantize=["MatMul", "Gemm"]), data)

