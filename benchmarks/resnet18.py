"""A ResNet-18-sized int8 QDQ model for benchmarks (built here; none ships with qprobe).

ResNet-18's layout (He et al. 2016): Conv 7x7/2 (64) -> ReLU -> MaxPool 3x3/2, four stages
of two BasicBlocks (3x3 -> ReLU -> 3x3, + identity or a 1x1/2 projection, -> ReLU) with
64/128/256/512 channels, GlobalAveragePool -> Flatten -> Gemm (1000): 11.7 M weights,
input ``image`` ``[N, 3, 224, 224]``. Random He weights with BatchNorm folded (a bias per
conv), built with onnx.helper and quantized by onnxruntime's ``quantize_static`` (QDQ,
int8 activations, per-channel int8 weights, MinMax on seeded random images). The model is
cached under ``benchmarks/.cache`` (quantization takes a while).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAGES = (64, 128, 256, 512)
INPUT_SHAPE = (3, 224, 224)
CACHE = Path(__file__).parent / ".cache"


class _Net:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.nodes, self.inits = rng, [], []

    def conv(self, name: str, x: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        w = self.rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.05, cout).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        self.nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}_out"], name=name,
                                           kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        return self.relu(f"{name}_out", name) if relu else f"{name}_out"

    def relu(self, x: str, name: str) -> str:
        self.nodes.append(helper.make_node("Relu", [x], [f"{name}_relu"], name=f"{name}_relu"))
        return f"{name}_relu"

    def block(self, name: str, x: str, cin: int, cout: int, stride: int) -> str:
        y = self.conv(f"{name}_a", x, cin, cout, 3, stride, True)
        y = self.conv(f"{name}_b", y, cout, cout, 3, 1, False)
        skip = x if stride == 1 and cin == cout else self.conv(f"{name}_down", x, cin, cout, 1, stride, False)
        self.nodes.append(helper.make_node("Add", [y, skip], [f"{name}_add"], name=f"{name}_add"))
        return self.relu(f"{name}_add", name)


def float_resnet18(seed: int = 0) -> onnx.ModelProto:
    net = _Net(np.random.default_rng(seed))
    x = net.conv("conv1", "image", 3, 64, 7, 2, True)
    net.nodes.append(helper.make_node("MaxPool", [x], ["pool1"], name="pool1", kernel_shape=[3, 3], strides=[2, 2],
                                      pads=[1, 1, 1, 1]))
    x, cin = "pool1", 64
    for s, cout in enumerate(STAGES):
        for b in range(2):
            x = net.block(f"layer{s + 1}_{b}", x, cin, cout, 2 if b == 0 and s > 0 else 1)
            cin = cout
    net.nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
                  helper.make_node("Flatten", ["gap"], ["features"], name="flatten")]
    w = net.rng.normal(0, np.sqrt(1.0 / 512), (1000, 512)).astype(np.float32)
    net.inits += [numpy_helper.from_array(w, "fc.weight"),
                  numpy_helper.from_array(np.zeros(1000, np.float32), "fc.bias")]
    net.nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(net.nodes, "resnet18", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                    ["N", *INPUT_SHAPE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], net.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def resnet18_path(seed: int = 0, calibration: int = 8) -> Path:
    """The cached int8 QDQ ResNet-18-sized model (built on first use)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    dst = CACHE / f"resnet18_int8_seed{seed}.onnx"
    if dst.exists():
        return dst
    images = np.random.default_rng(seed + 1).standard_normal((calibration, *INPUT_SHAPE)).astype(np.float32)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"image": images[i : i + 1]} for i in range(len(images))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(float_resnet18(seed), src)
        quantize_static(str(src), str(out), _Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
        out.replace(dst)
    return dst


if __name__ == "__main__":
    print(resnet18_path())
