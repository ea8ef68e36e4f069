"""A MobileNetV2-like int8 QDQ model (depthwise convs, inverted residuals with Adds), for benchmarks.

``build_mobilenet_like(seed)`` builds the float network with onnx.helper (random He
weights, BatchNorm already folded), then quantizes it with onnxruntime's
``quantize_static``: QDQ, int8 activations, per-channel int8 weights, MinMax calibration
on seeded random images. Deterministic for a seed. Input ``image`` ``[N, 3, 64, 64]``,
output ``logits`` ``[N, 10]``.

Network: stem Conv 3x3/2 (16) -> ReLU6, then inverted residual blocks
(expand 1x1 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> project 1x1, with an Add when the
shape is kept) with (expansion, channels, stride) = (1,16,1), (4,24,2), (4,24,1),
(4,32,2), (4,32,1), (4,32,1), (4,64,2), (4,64,1); then Conv 1x1 (128) -> ReLU6 ->
GlobalAveragePool -> Flatten -> Gemm (10).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCKS = ((1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1), (4, 32, 1), (4, 64, 2), (4, 64, 1))
INPUT_SHAPE = (3, 64, 64)


class _Net:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def conv(self, name: str, x: str, cin: int, cout: int, k: int, stride: int, group: int, act: bool) -> str:
        fan_in = cin // group * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // group, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.05, cout).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        pad = k // 2
        self.nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}_out"], name=name,
                                           kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group))
        y = f"{name}_out"
        if act:
            self.nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [f"{name}_relu6"],
                                               name=f"{name}_relu6"))
            y = f"{name}_relu6"
        return y

    def block(self, i: int, x: str, cin: int, expand: int, cout: int, stride: int) -> str:
        hidden = cin * expand
        y = x if expand == 1 else self.conv(f"block{i}_expand", x, cin, hidden, 1, 1, 1, True)
        y = self.conv(f"block{i}_dw", y, hidden, hidden, 3, stride, hidden, True)
        y = self.conv(f"block{i}_project", y, hidden, cout, 1, 1, 1, False)
        if stride == 1 and cin == cout:
            self.nodes.append(helper.make_node("Add", [x, y], [f"block{i}_add_out"], name=f"block{i}_add"))
            y = f"block{i}_add_out"
        return y


def float_mobilenet_like(seed: int = 0) -> onnx.ModelProto:
    net = _Net(np.random.default_rng(seed))
    net.inits += [numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
                  numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max")]
    x = net.conv("stem", "image", 3, 16, 3, 2, 1, True)
    cin = 16
    for i, (expand, cout, stride) in enumerate(BLOCKS):
        x = net.block(i, x, cin, expand, cout, stride)
        cin = cout
    x = net.conv("head_conv", x, cin, 128, 1, 1, 1, True)
    net.nodes += [helper.make_node("GlobalAveragePool", [x], ["pool_out"], name="pool"),
                  helper.make_node("Flatten", ["pool_out"], ["features"], name="flatten")]
    w = net.rng.normal(0, np.sqrt(1.0 / 128), (10, 128)).astype(np.float32)
    net.inits += [numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
    net.nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(net.nodes, "mobilenet_like",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", *INPUT_SHAPE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], net.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def build_mobilenet_like(seed: int = 0, calibration: int = 16) -> onnx.ModelProto:
    """The int8 QDQ model (quantize_static on seeded random images)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    images = np.random.default_rng(seed + 1).standard_normal((calibration, *INPUT_SHAPE)).astype(np.float32)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"image": images[i : i + 1]} for i in range(len(images))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(float_mobilenet_like(seed), src)
        quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
        return onnx.load(dst)
