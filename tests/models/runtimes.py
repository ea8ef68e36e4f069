"""Tiny int8 QDQ models for the runtime-backend tests, built with onnx.helper + quantize_static.

Each builder writes ``NAME_float.onnx`` and ``NAME_int8.onnx`` into a folder and returns a
``Built`` with the int8 path and a deterministic validation input set. Models are tiny so that
OpenVINO compiles them quickly on a loaded machine.

* ``silu``: Conv -> Sigmoid -> Mul twice, every tensor quantized (QDQ around each op).
* ``silu_fused``: the same network with the Conv outputs and the SiLU left in float (only the
  Conv inputs are quantized), the layout OpenVINO fuses into one int8 Conv kernel.
* ``residual``: Conv -> Conv -> Add(residual) -> Relu -> GlobalAveragePool -> Gemm.
* ``tcn``: a 1-D TCN (dilated Conv1d blocks with residual Adds and Relus, a Gemm head).
* ``attention``: single-head self-attention, MatMul(QK^T) -> Softmax -> MatMul(V).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.build import quantize_file


@dataclass(frozen=True)
class Built:
    int8: Path
    float: Path
    inputs: dict[str, np.ndarray]




def _init(rng: np.random.Generator, name: str, shape: tuple[int, ...], sd: float) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.normal(0, sd, shape).astype(np.float32), name)


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x_shape: list[Any],
           y_shape: list[Any]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantize(d: Path, name: str, proto: onnx.ModelProto, sample: tuple[int, ...], seed: int, **kw: Any) -> Built:
    d.mkdir(parents=True, exist_ok=True)
    fp, qp = d / f"{name}_float.onnx", d / f"{name}_int8.onnx"
    onnx.save(proto, fp)
    rng = np.random.default_rng(seed + 100)
    calib = rng.normal(0, 1, (16, *sample)).astype(np.float32)
    quantize_file(fp, qp, {"x": calib}, **kw)
    inputs = {"x": rng.normal(0, 1, (6, *sample)).astype(np.float32)}
    return Built(qp, fp, inputs)


def _silu_proto(seed: int, c: int = 16, h: int = 8) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [_init(rng, "w1", (c, 3, 3, 3), 0.5), _init(rng, "b1", (c,), 0.1),
             _init(rng, "w2", (c, c, 3, 3), 0.3), _init(rng, "b2", (c,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["s1"], name="sig1"),
        helper.make_node("Mul", ["c1", "s1"], ["m1"], name="mul1"),
        helper.make_node("Conv", ["m1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s2"], name="sig2"),
        helper.make_node("Mul", ["c2", "s2"], ["y"], name="mul2"),
    ]
    return _model(nodes, inits, ["N", 3, h, h], ["N", c, h, h])


def silu(d: Path, seed: int = 1) -> Built:
    return _quantize(d, "silu", _silu_proto(seed), (3, 8, 8), seed)


def silu_fused(d: Path, seed: int = 1) -> Built:
    return _quantize(
        d, "silu_fused", _silu_proto(seed), (3, 8, 8), seed, op_types_to_quantize=["Conv"],
        extra_options={"OpTypesToExcludeOutputQuantization": ["Conv"]},
    )


def residual(d: Path, seed: int = 2, c: int = 8) -> Built:
    rng = np.random.default_rng(seed)
    inits = [_init(rng, "w1", (c, 3, 3, 3), 0.5), _init(rng, "b1", (c,), 0.1),
             _init(rng, "w2", (c, c, 3, 3), 0.3), _init(rng, "b2", (c,), 0.1),
             _init(rng, "wg", (4, c), 0.5), _init(rng, "bg", (4,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c1", "c2"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], name="gemm", transB=1),
    ]
    return _quantize(d, "residual", _model(nodes, inits, ["N", 3, 8, 8], ["N", 4]), (3, 8, 8), seed)


def tcn(d: Path, seed: int = 3, c: int = 8, t: int = 32) -> Built:
    rng = np.random.default_rng(seed)
    inits = [_init(rng, "w0", (c, 2, 3), 0.5), _init(rng, "b0", (c,), 0.1),
             _init(rng, "wg", (2, c * t), 0.1), _init(rng, "bg", (2,), 0.1)]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["h0"], name="proj", pads=[1, 1])]
    prev = "h0"
    for i, dil in enumerate((1, 2, 4)):
        inits += [_init(rng, f"w{i + 1}", (c, c, 3), 0.3), _init(rng, f"b{i + 1}", (c,), 0.1)]
        nodes += [
            helper.make_node("Conv", [prev, f"w{i + 1}", f"b{i + 1}"], [f"k{i}"], name=f"block{i}_conv",
                             pads=[dil, dil], dilations=[dil]),
            helper.make_node("Relu", [f"k{i}"], [f"r{i}"], name=f"block{i}_relu"),
            helper.make_node("Add", [prev, f"r{i}"], [f"h{i + 1}"], name=f"block{i}_add"),
        ]
        prev = f"h{i + 1}"
    nodes += [
        helper.make_node("Flatten", [prev], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], name="head", transB=1),
    ]
    return _quantize(d, "tcn", _model(nodes, inits, ["N", 2, t], ["N", 2]), (2, t), seed)


def attention(d: Path, seed: int = 4, t: int = 8, e: int = 16) -> Built:
    rng = np.random.default_rng(seed)
    inits = [_init(rng, n, (e, e), 0.3) for n in ("wq", "wk", "wv", "wo")]
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k_proj"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v_proj"),
        helper.make_node("Transpose", ["k"], ["kt"], name="k_t", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["att"], name="scores"),
        helper.make_node("Softmax", ["att"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"], name="context"),
        helper.make_node("MatMul", ["o", "wo"], ["y"], name="out_proj"),
    ]
    return _quantize(d, "attention", _model(nodes, inits, ["N", t, e], ["N", t, e]), (t, e), seed)


MODELS: dict[str, Callable[[Path], Built]] = {
    "silu": silu, "silu_fused": silu_fused, "residual": residual, "tcn": tcn, "attention": attention,
}
