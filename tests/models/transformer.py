"""Attention-style patterns: MatMul -> Softmax -> MatMul with Reshape/Transpose heads and a
float LayerNormalization, and Einsum left between a DequantizeLinear and a QuantizeLinear."""

from __future__ import annotations

import numpy as np

from models.build import Net, calibration, quantize, tensor
from models.parts import Parts

T, D, HEADS = 8, 16, 2


def _heads(net: Net, x: str, name: str, perm: list[int]) -> str:
    shape = net.init(f"{name}_heads_shape", [0, 0, HEADS, D // HEADS], np.int64)
    r = net.node("Reshape", [x, shape], f"{name}_split_heads")
    return net.node("Transpose", [r], f"{name}_transpose", perm=perm)


def attention(seed: int) -> Parts:
    """LayerNormalization (float) -> Q/K/V MatMuls -> heads -> MatMul(Q, K^T) * 1/sqrt(d) ->
    Softmax -> MatMul(., V) -> merge heads -> output MatMul -> residual Add."""
    net = Net("attention", np.random.default_rng(seed))
    ln = net.node("LayerNormalization", ["x", net.init("ln_gamma", 1 + 0.1 * net.rng.standard_normal(D)),
                                         net.init("ln_beta", 0.1 * net.rng.standard_normal(D))], "ln", axis=-1,
                  epsilon=1e-5)
    q, k, v = (net.node("MatMul", [ln, net.weight(f"w{p}", [D, D], 0.3)], f"proj_{p}") for p in "qkv")
    qh = _heads(net, q, "q", [0, 2, 1, 3])
    kh = _heads(net, k, "k", [0, 2, 3, 1])
    vh = _heads(net, v, "v", [0, 2, 1, 3])
    scores = net.node("MatMul", [qh, kh], "scores")
    scaled = net.node("Mul", [scores, net.init("inv_sqrt_d", 1 / np.sqrt(D // HEADS))], "scale")
    attn = net.node("Softmax", [scaled], "softmax", axis=-1)
    ctx = net.node("MatMul", [attn, vh], "context")
    merged = net.node("Transpose", [ctx], "merge_transpose", perm=[0, 2, 1, 3])
    merged = net.node("Reshape", [merged, net.init("merge_shape", [0, 0, D], np.int64)], "merge_heads")
    out = net.node("MatMul", [merged, net.weight("wo", [D, D], 0.3)], "proj_o")
    y = net.node("Add", ["x", out], "residual")
    fm = net.model([tensor("x", ["N", T, D])], [tensor(y, None)])
    data = calibration({"x": [T, D]}, 16, seed + 100)
    return Parts(fm, quantize(fm, data, nodes_to_exclude=["ln"]), data)


def einsum(seed: int) -> Parts:
    """Einsum (a batched Gram matrix and a contraction with a float weight), which
    quantize_static does not quantize: it sits between DequantizeLinear and QuantizeLinear."""
    net = Net("einsum", np.random.default_rng(seed))
    a = net.node("MatMul", ["x", net.weight("w_in", [8, 8], 0.4)], "proj_in")
    gram = net.node("Einsum", [a, a], "gram", equation="bij,bkj->bik")
    r = net.node("Relu", [gram], "relu")
    mixed = net.node("Einsum", [r, net.weight("w_mix", [4, 6], 0.4)], "mix", equation="bik,kl->bil")
    flat = net.node("Flatten", [mixed], "flatten", axis=1)
    out = net.node("Gemm", [flat, net.weight("fc_w", [3, 24], 0.3), net.weight("fc_b", [3], 0.1)], "fc", transB=1)
    fm = net.model([tensor("x", ["N", 4, 8])], [tensor(out, None)])
    data = calibration({"x": [4, 8]}, 16, seed + 100)
    return Parts(fm, quantize(fm, data), data)
