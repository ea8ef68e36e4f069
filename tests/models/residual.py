"""A small residual CNN for tests, in QDQ and QOperator form, built with onnx.helper and onnxruntime's
quantize_static."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType

from models.build import quantize_file


def float_residual_model(seed: int = 0, channels: int = 4) -> onnx.ModelProto:
    """x -> conv1 -> add(conv1, conv2(conv1)) -> relu -> globalavgpool -> flatten -> gemm."""
    rng = np.random.default_rng(seed)
    c = channels
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (c, 3, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, (c,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (c, c, 3, 3)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.normal(0, 0.1, (c,)).astype(np.float32), "b2")
    wg = numpy_helper.from_array(rng.normal(0, 0.5, (3, c)).astype(np.float32), "wg")
    bg = numpy_helper.from_array(rng.normal(0, 0.1, (3,)).astype(np.float32), "bg")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c1", "c2"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], name="gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [w1, b1, w2, b2, wg, bg],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantize(tmp: Path, seed: int, name: str, fmt: QuantFormat, activations: QuantType, per_channel: bool) -> Path:
    fp = tmp / "model_float.onnx"
    onnx.save(float_residual_model(seed), fp)
    data = np.random.default_rng(seed + 1).uniform(0, 1, (16, 3, 8, 8)).astype(np.float32)
    out = tmp / name
    return quantize_file(fp, out, {"x": data}, fmt=fmt, activations=activations, per_channel=per_channel)


def qdq_residual_model(tmp: Path, seed: int = 0) -> Path:
    """Quantize ``float_residual_model`` to int8 QDQ (per-channel weights) at ``tmp/model_int8.onnx``."""
    return _quantize(tmp, seed, "model_int8.onnx", QuantFormat.QDQ, QuantType.QInt8, per_channel=True)


def qoperator_residual_model(tmp: Path, seed: int = 0) -> Path:
    """The same network quantized to QOperator form (QLinearConv, QLinearAdd, QGemm, ...), uint8."""
    return _quantize(tmp, seed, "model_qop.onnx", QuantFormat.QOperator, QuantType.QUInt8, per_channel=False)
