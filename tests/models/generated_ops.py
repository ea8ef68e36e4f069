"""Building blocks of ``generated.random_qdq_model``: the QDQ emitter and one function per op.

Each op function ``(builder, step, x, live) -> QTensor | None`` appends an op that reads
the quantized tensor ``x`` (and possibly an earlier one from ``live``) wrapped in QDQ,
and returns its quantized output; None when the op does not apply to ``x``'s shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_RANGES = {"int8": (-128, 127, TensorProto.INT8), "uint8": (0, 255, TensorProto.UINT8),
           "int16": (-32768, 32767, TensorProto.INT16)}


@dataclass
class QTensor:
    """A quantized tensor of the model under construction (shape without the batch axis)."""

    codes: str
    shape: list[int]
    scale: np.float32
    zp: int
    std: float
    dq: str | None = None  # a shared DequantizeLinear output, once one exists


class Builder:
    def __init__(self, rng: np.random.Generator, act: str, pow2_share: float, relu_nodes: bool = False) -> None:
        self.rng = rng
        self.relu_nodes = relu_nodes
        self.act = act
        self.mid = 0 if act == "int16" else _RANGES[act][0] + 128
        self.pow2_share = pow2_share
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []

    # -- plumbing
    def const(self, name: str, value: object) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    def zp_const(self, name: str, zp: int) -> str:
        return self.const(name, np.asarray(zp, dtype=self.act))

    def dq(self, t: QTensor, owner: str, k: int) -> str:
        """The float view of ``t`` for ``owner``'s input ``k`` (a shared or an own DequantizeLinear)."""
        if t.dq is not None and self.rng.random() < 0.5:
            return t.dq
        name = f"{owner}_dq{k}"
        s = self.const(f"{name}_scale", t.scale)
        z = self.zp_const(f"{name}_zp", t.zp)
        out = self.node("DequantizeLinear", [t.codes, s, z], name)
        t.dq = t.dq or out
        return out

    def choose_scale(self, std: float, ref: np.float32 | None) -> np.float32:
        half = (_RANGES[self.act][1] - _RANGES[self.act][0]) / 2
        target = 4.0 * max(std, 1e-3) / half * float(self.rng.uniform(0.6, 1.6))
        if ref is not None and self.rng.random() < self.pow2_share:
            return np.float32(ref * np.float32(2.0 ** round(math.log2(target / float(ref)))))
        return np.float32(target)

    def quant(self, value: str, owner: str, shape: list[int], std: float, ref: np.float32 | None,
              nonneg: bool = False, scale: np.float32 | None = None, zp: int | None = None) -> QTensor:
        lo, _hi, _t = _RANGES[self.act]
        s = scale if scale is not None else self.choose_scale(std, ref)
        if zp is None:
            zp = lo if nonneg else self.mid + int(self.rng.integers(-20, 21))
        name = f"{owner}_quant"
        out = self.node("QuantizeLinear", [value, self.const(f"{name}_scale", s), self.zp_const(f"{name}_zp", zp)],
                        name)
        return QTensor(out, shape, np.float32(s), zp, std)

    def weight(self, owner: str, shape: list[int], axis: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Per-channel symmetric int8 weights with Kaiming-like magnitude: (float view, codes, scales)."""
        fan_in = int(np.prod(shape)) // shape[axis]
        real = self.rng.standard_normal(shape) / math.sqrt(fan_in)
        other = tuple(i for i in range(len(shape)) if i != axis)
        scales = (np.abs(real).max(axis=other) / 127.0).astype(np.float32)
        if self.rng.random() < self.pow2_share:
            scales = (2.0 ** np.round(np.log2(scales))).astype(np.float32)
        bshape = [1] * len(shape)
        bshape[axis] = -1
        codes = np.clip(np.round(real / scales.reshape(bshape)), -127, 127).astype(np.int8)
        name = f"{owner}_wdq"
        w = self.const(f"{owner}_w", codes)
        s = self.const(f"{name}_scale", scales)
        z = self.const(f"{name}_zp", np.zeros(scales.size, np.int8))
        return self.node("DequantizeLinear", [w, s, z], name, axis=axis), codes, scales

    def bias(self, owner: str, sx: np.float32, sw: np.ndarray, std: float) -> str:
        bscale = (np.float32(sx) * sw).astype(np.float32)
        codes = np.round(self.rng.normal(0, 0.2 * max(std, 1e-3), sw.size) / bscale).astype(np.int32)
        name = f"{owner}_bdq"
        b = self.const(f"{owner}_b", codes)
        s = self.const(f"{name}_scale", bscale)
        z = self.const(f"{name}_zp", np.zeros(sw.size, np.int32))
        return self.node("DequantizeLinear", [b, s, z], name, axis=0)

    def model_input(self, name: str, shape: list[int]) -> QTensor:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape]))
        half = (_RANGES[self.act][1] - _RANGES[self.act][0]) / 2
        s, z = np.float32(4.0 / half * self.rng.uniform(0.8, 1.2)), self.mid + int(self.rng.integers(-10, 11))
        q = self.node("QuantizeLinear", [name, self.const("input_quant_scale", s), self.zp_const("input_quant_zp", z)],
                      "input_quant")
        return QTensor(q, shape, s, z, 1.0)

    def finish(self, x: QTensor, opset: int) -> onnx.ModelProto:
        out = self.node("DequantizeLinear", [x.codes, self.const("output_dq_scale", x.scale),
                                             self.zp_const("output_dq_zp", x.zp)], "output_dq")
        self.nodes.append(helper.make_node("Identity", [out], ["output"], name="output_identity"))
        graph = helper.make_graph(self.nodes, "random_qdq", self.inputs,
                                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model


OpFn = Callable[[Builder, int, QTensor, list[QTensor]], QTensor | None]


def _conv(b: Builder, i: int, x: QTensor, live: list[QTensor], depthwise: bool = False,
          name: str | None = None, out_ch: int | None = None, k: int | None = None) -> QTensor | None:
    if len(x.shape) < 2:
        return None
    owner = name or (f"dwconv_{i}" if depthwise else f"conv_{i}")
    c, spatial = x.shape[0], x.shape[1:]
    rng = b.rng
    k = k if k is not None else int(rng.choice([1, 3]))
    group = c if depthwise else (2 if c % 2 == 0 and rng.random() < 0.2 else 1)
    m = out_ch if out_ch is not None else (c * int(rng.integers(1, 3)) if depthwise else int(rng.integers(2, 9)))
    m = m - m % group if m >= group else group
    stride = int(rng.choice([1, 2])) if min(spatial) >= 6 and name is None else 1
    dil = 2 if k == 3 and min(spatial) >= 7 and rng.random() < 0.25 else 1
    ext = (k - 1) * dil + 1
    pad = (ext - 1) // 2
    attrs: dict[str, object] = {"group": group, "strides": [stride] * len(spatial), "dilations": [dil] * len(spatial)}
    if rng.random() < 0.2 and stride == 1 and dil == 1:
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = [pad] * (2 * len(spatial))
    out_sp = [(s + 2 * pad - ext) // stride + 1 for s in spatial]
    w, codes, sw = b.weight(owner, [m, c // group, *([k] * len(spatial))], axis=0)
    gain = float(np.sqrt(((codes.astype(np.float64) * sw.reshape(-1, *[1] * (codes.ndim - 1))) ** 2)
                         .reshape(m, -1).sum(axis=1).max()))
    std = x.std * gain
    inputs = [b.dq(x, owner, 0), w, b.bias(owner, x.scale, sw, std)]
    y = b.node("Conv", inputs, owner, **attrs)
    relu = rng.random() < 0.3  # a ReLU is the output zero point at qmin, as quantize_static leaves it,
    if relu and b.relu_nodes:  # or, on request, an explicit Relu node before the QuantizeLinear
        y = b.node("Relu", [y], f"{owner}_relu")
    return b.quant(y, owner, [m, *out_sp], std, x.scale, nonneg=relu)


def _partner(b: Builder, i: int, x: QTensor, live: list[QTensor], same_channels: bool) -> QTensor:
    def want(t: QTensor) -> bool:
        return t.shape == x.shape if same_channels else t.shape[1:] == x.shape[1:]

    cands = [t for t in live if t is not x and want(t)]
    if cands and b.rng.random() < 0.7:
        return cands[int(b.rng.integers(len(cands)))]
    if len(x.shape) < 2:
        return x
    out_ch = x.shape[0] if same_channels else int(b.rng.integers(1, 6))
    t = _conv(b, i, x, live, name=f"branch_{i}", out_ch=out_ch, k=1)
    assert t is not None
    return t


def _binary(op: str) -> OpFn:
    def build(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor:
        owner = f"{op.lower()}_{i}"
        y = _partner(b, i, x, live, same_channels=True)
        out = b.node(op, [b.dq(x, owner, 0), b.dq(y, owner, 1)], owner)
        std = x.std * y.std if op == "Mul" else math.hypot(x.std, y.std)
        ref = max(x.scale, y.scale) if op != "Mul" else np.float32(x.scale * y.scale)
        return b.quant(out, owner, list(x.shape), std, np.float32(ref))

    return build


def _concat(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor | None:
    if len(x.shape) < 1:
        return None
    owner = f"concat_{i}"
    y = _partner(b, i, x, live, same_channels=False)
    out = b.node("Concat", [b.dq(x, owner, 0), b.dq(y, owner, 1)], owner, axis=1)
    same = b.rng.random() < 0.3
    return b.quant(out, owner, [x.shape[0] + y.shape[0], *x.shape[1:]], max(x.std, y.std), x.scale,
                   scale=x.scale if same else None, zp=x.zp if same else None)


def _unary(op: str, **attrs: object) -> OpFn:
    def build(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor:
        owner = f"{op.lower()}_{i}"
        out = b.node(op, [b.dq(x, owner, 0)], owner, **attrs)
        lo = _RANGES[b.act][0]
        steps = _RANGES[b.act][1] - lo + 1
        if op == "Sigmoid":
            return b.quant(out, owner, list(x.shape), 0.0, None, scale=np.float32(1 / steps), zp=lo)
        if op == "Tanh":
            return b.quant(out, owner, list(x.shape), 0.0, None, scale=np.float32(2 / steps), zp=b.mid)
        keep = op in ("Relu",) and b.rng.random() < 0.5
        return b.quant(out, owner, list(x.shape), x.std, x.scale, nonneg=op == "Relu" and b.rng.random() < 0.5,
                       scale=x.scale if keep else None, zp=x.zp if keep else None)

    return build


def _softmax(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor:
    owner = f"softmax_{i}"
    axis = int(b.rng.choice([-1, 1])) if len(x.shape) > 1 else -1
    out = b.node("Softmax", [b.dq(x, owner, 0)], owner, axis=axis)
    lo, hi = _RANGES[b.act][0], _RANGES[b.act][1]
    return b.quant(out, owner, list(x.shape), 0.0, None, scale=np.float32(1 / (hi - lo + 1)), zp=lo)


def _clip(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor:
    owner = f"clip_{i}"
    lo, hi = b.const(f"{owner}_min", np.float32(-x.std)), b.const(f"{owner}_max", np.float32(2 * x.std))
    out = b.node("Clip", [b.dq(x, owner, 0), lo, hi], owner)
    return b.quant(out, owner, list(x.shape), x.std, x.scale)


def _prelu(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor | None:
    if len(x.shape) < 1:
        return None
    owner = f"prelu_{i}"
    slope = np.round(b.rng.uniform(0, 0.5, (x.shape[0], *[1] * (len(x.shape) - 1))) * 256).astype(np.int8)
    sdq = b.node("DequantizeLinear", [b.const(f"{owner}_slope", slope),
                                      b.const(f"{owner}_sdq_scale", np.float32(1 / 256)),
                                      b.const(f"{owner}_sdq_zp", np.int8(0))], f"{owner}_sdq")
    out = b.node("PRelu", [b.dq(x, owner, 0), sdq], owner)
    return b.quant(out, owner, list(x.shape), x.std, x.scale)


def _pool(op: str) -> OpFn:
    def build(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor | None:
        if len(x.shape) < 2 or min(x.shape[1:]) < 3:
            return None
        owner = f"{op.lower()}_{i}"
        spatial = x.shape[1:]
        k = int(b.rng.choice([2, 3]))
        stride = int(b.rng.choice([1, 2]))
        pad = int(b.rng.integers(0, k // 2 + 1))
        attrs: dict[str, object] = {"kernel_shape": [k] * len(spatial), "strides": [stride] * len(spatial),
                                    "pads": [pad] * (2 * len(spatial))}
        if op == "AveragePool":
            attrs["count_include_pad"] = int(b.rng.random() < 0.3)
        out = b.node(op, [b.dq(x, owner, 0)], owner, **attrs)
        shape = [x.shape[0], *[(s + 2 * pad - k) // stride + 1 for s in spatial]]
        same = op == "MaxPool" and b.rng.random() < 0.7
        return b.quant(out, owner, shape, x.std, x.scale, scale=x.scale if same else None, zp=x.zp if same else None)

    return build


def _global_pool(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor | None:
    if len(x.shape) < 2:
        return None
    owner = f"globalaveragepool_{i}"
    out = b.node("GlobalAveragePool", [b.dq(x, owner, 0)], owner)
    return b.quant(out, owner, [x.shape[0], *[1] * (len(x.shape) - 1)], x.std * 0.5, x.scale)


def _move(op: str) -> OpFn:
    def build(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor | None:
        owner = f"{op.lower()}_{i}"
        rank = len(x.shape) + 1
        extra: list[str] = []
        attrs: dict[str, object] = {}
        if op == "Flatten":
            shape = [int(np.prod(x.shape))]
        elif op == "Transpose":
            if rank < 3:
                return None
            attrs["perm"] = [0, *range(1, rank - 2), rank - 1, rank - 2]
            shape = [*x.shape[:-2], x.shape[-1], x.shape[-2]]
        elif op == "Reshape":
            if rank < 3:
                return None
            shape = [x.shape[0], int(np.prod(x.shape[1:]))]
            extra = [b.const(f"{owner}_shape", np.array([0, *shape], np.int64))]
        elif op == "Slice":
            if x.shape[-1] < 3:
                return None
            shape = [*x.shape[:-1], x.shape[-1] - 1]
            extra = [b.const(f"{owner}_{k}", np.array([v], np.int64)) for k, v in
                     (("starts", 1), ("ends", 2**31), ("axes", rank - 1))]
        elif op == "Pad":
            if rank < 3:
                return None
            pads = [0, 0] + [1] * (rank - 2) + [0, 0] + [1] * (rank - 2)
            extra = [b.const(f"{owner}_pads", np.array(pads, np.int64))]
            shape = [x.shape[0], *[s + 2 for s in x.shape[1:]]]
        else:  # Resize, nearest x2 on the spatial axes
            if rank < 3:
                return None
            scales = np.array([1, 1] + [2] * (rank - 2), np.float32)
            extra = ["", b.const(f"{owner}_scales", scales)]
            attrs["mode"] = "nearest"
            shape = [x.shape[0], *[2 * s for s in x.shape[1:]]]
        out = b.node(op, [b.dq(x, owner, 0), *extra], owner, **attrs)
        same = b.rng.random() < 0.8
        return b.quant(out, owner, shape, x.std, x.scale, scale=x.scale if same else None, zp=x.zp if same else None)

    return build


def _gemm(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor:
    if len(x.shape) != 1:
        x = _move("Flatten")(b, i, x, live) or x
    owner = f"gemm_{i}"
    m = int(b.rng.integers(2, 10))
    w, codes, sw = b.weight(owner, [m, x.shape[0]], axis=0)
    std = x.std * float(np.sqrt(((codes * sw[:, None]) ** 2).sum(axis=1).max()))
    out = b.node("Gemm", [b.dq(x, owner, 0), w, b.bias(owner, x.scale, sw, std)], owner, transB=1)
    return b.quant(out, owner, [m], std, x.scale)


def _matmul(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor | None:
    owner = f"matmul_{i}"
    n_in, n_out = x.shape[-1], int(b.rng.integers(2, 10))
    w, codes, sw = b.weight(owner, [n_in, n_out], axis=1)
    std = x.std * float(np.sqrt(((codes * sw[None, :]) ** 2).sum(axis=0).max()))
    out = b.node("MatMul", [b.dq(x, owner, 0), w], owner)
    return b.quant(out, owner, [*x.shape[:-1], n_out], std, x.scale)


def _silu_island(b: Builder, i: int, x: QTensor, live: list[QTensor]) -> QTensor:
    """A float island: Sigmoid and Mul left unquantized (x * sigmoid(x)), as nodes_to_exclude leaves them."""
    owner = f"silu_{i}"
    xf = b.dq(x, owner, 0)
    sig = b.node("Sigmoid", [xf], f"{owner}_sigmoid")
    out = b.node("Mul", [xf, sig], owner)
    return b.quant(out, owner, list(x.shape), x.std, x.scale)


OPS: dict[str, OpFn] = {
    "Conv": _conv,
    "DepthwiseConv": lambda b, i, x, live: _conv(b, i, x, live, depthwise=True),
    "Add": _binary("Add"), "Sub": _binary("Sub"), "Mul": _binary("Mul"),
    "Concat": _concat,
    "Relu": _unary("Relu"), "LeakyRelu": _unary("LeakyRelu", alpha=0.1), "Sigmoid": _unary("Sigmoid"),
    "Tanh": _unary("Tanh"), "HardSwish": _unary("HardSwish"), "Clip": _clip, "PRelu": _prelu, "Softmax": _softmax,
    "MaxPool": _pool("MaxPool"), "AveragePool": _pool("AveragePool"), "GlobalAveragePool": _global_pool,
    "Flatten": _move("Flatten"), "Transpose": _move("Transpose"), "Reshape": _move("Reshape"),
    "Slice": _move("Slice"), "Pad": _move("Pad"), "Resize": _move("Resize"),
    "Gemm": _gemm, "MatMul": _matmul, "SiLUFloatIsland": _silu_island,
}
