"""Convolutional export patterns: PyTorch's flatten, mean pooling, depthwise-separable and
inverted-residual blocks, YOLO's SiLU chains, a dilated 1-D TCN, a fixed batch of one,
DepthToSpace/SpaceToDepth. Each is a float graph quantized by ``quantize_static``."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from models.build import Net, calibration, quantize, tensor
from models.parts import Parts


def _gemm(net: Net, x: str, name: str, k: int, n: int) -> str:
    return net.node("Gemm", [x, net.weight(f"{name}_w", [n, k], 0.3), net.weight(f"{name}_b", [n], 0.1)], name,
                    transB=1)


def _head(net: Net, x: str, channels: int, classes: int) -> str:
    p = net.node("GlobalAveragePool", [x], "gap")
    f = net.node("Flatten", [p], "flatten", axis=1)
    return _gemm(net, f, "fc", channels, classes)


def _parts(net: Net, x_shape: list[int], out: str, seed: int, batch: int | str = "N", **qopts: object) -> Parts:
    fm = net.model([tensor("x", [batch, *x_shape])], [tensor(out, None)])
    data = calibration({"x": x_shape}, 16, seed + 100)
    return Parts(fm, quantize(fm, data, **qopts), data)  # type: ignore[arg-type]


def flatten_view(seed: int) -> Parts:
    """``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat -> Reshape, dynamic batch."""
    net = Net("flatten_view", np.random.default_rng(seed))
    c = net.node("Relu", [net.conv("x", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])], "relu1")
    c = net.node("MaxPool", [c], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    c = net.node("Relu", [net.conv(c, "conv2", 8, 8, 3, pads=[1, 1, 1, 1])], "relu2")
    shape = net.node("Shape", [c], "shape")
    idx = net.node("Constant", [], "idx0", value=_i64_tensor("idx0_v", 0, scalar=True))
    batch = net.node("Gather", [shape, idx], "gather", axis=0)
    axes = net.node("Constant", [], "axes0", value=_i64_tensor("axes0_v", [0]))
    batch1 = net.node("Unsqueeze", [batch, axes], "unsqueeze")
    minus1 = net.node("Constant", [], "minus1", value=_i64_tensor("minus1_v", [-1]))
    target = net.node("Concat", [batch1, minus1], "concat_shape", axis=0)
    flat = net.node("Reshape", [c, target], "reshape")
    return _parts(net, [3, 8, 8], _gemm(net, flat, "fc", 8 * 4 * 4, 10), seed)


def _i64_tensor(name: str, value: object, scalar: bool = False) -> onnx.TensorProto:
    arr = np.asarray(value, dtype=np.int64)
    return numpy_helper.from_array(arr.reshape(()) if scalar else arr, name)


def reducemean_pool(seed: int) -> Parts:
    """``x.mean((2, 3))``: ReduceMean global pooling (keepdims=0) feeding a Gemm."""
    net = Net("reducemean_pool", np.random.default_rng(seed))
    c = net.node("Relu", [net.conv("x", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])], "relu1")
    c = net.node("Relu", [net.conv(c, "conv2", 8, 16, 3, pads=[1, 1, 1, 1], strides=[2, 2])], "relu2")
    m = net.node("ReduceMean", [c], "mean", axes=[2, 3], keepdims=0)
    return _parts(net, [3, 8, 8], _gemm(net, m, "fc", 16, 5), seed)


def depthwise_separable(seed: int) -> Parts:
    """MobileNetV1-style: depthwise 3x3 (group = channels) then pointwise 1x1, ReLU6 as Clip."""
    net = Net("depthwise_separable", np.random.default_rng(seed))
    lo, hi = net.init("relu6_lo", 0.0), net.init("relu6_hi", 6.0)
    c = net.node("Clip", [net.conv("x", "stem", 3, 8, 3, pads=[1, 1, 1, 1]), lo, hi], "stem_relu6")
    for i, (cin, cout, stride) in enumerate([(8, 16, 1), (16, 16, 2)]):
        d = net.conv(c, f"dw{i}", cin, cin, 3, group=cin, pads=[1, 1, 1, 1], strides=[stride, stride], std=0.5)
        d = net.node("Clip", [d, lo, hi], f"dw{i}_relu6")
        c = net.node("Relu", [net.conv(d, f"pw{i}", cin, cout, 1)], f"pw{i}_relu")
    return _parts(net, [3, 8, 8], _head(net, c, 16, 4), seed)


def mobilenetv2_block(seed: int) -> Parts:
    """MobileNetV2 inverted residuals: expand 1x1 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> project
    1x1 (linear) -> residual Add; then a stride-2 block without residual."""
    net = Net("mobilenetv2_block", np.random.default_rng(seed))
    lo, hi = net.init("relu6_lo", 0.0), net.init("relu6_hi", 6.0)
    x = net.node("Clip", [net.conv("x", "stem", 3, 8, 3, pads=[1, 1, 1, 1]), lo, hi], "stem_relu6")
    for i, stride in enumerate((1, 2)):
        e = net.node("Clip", [net.conv(x, f"b{i}_expand", 8, 24, 1), lo, hi], f"b{i}_expand_relu6")
        d = net.conv(e, f"b{i}_dw", 24, 24, 3, group=24, pads=[1, 1, 1, 1], strides=[stride, stride], std=0.5)
        d = net.node("Clip", [d, lo, hi], f"b{i}_dw_relu6")
        p = net.conv(d, f"b{i}_project", 24, 8, 1, std=0.2)
        x = net.node("Add", [x, p], f"b{i}_add") if stride == 1 else p
    return _parts(net, [3, 8, 8], _head(net, x, 8, 4), seed)


def _silu(net: Net, x: str, name: str) -> str:
    return net.node("Mul", [x, net.node("Sigmoid", [x], f"{name}_sigmoid")], f"{name}_mul")


def silu_yolo(seed: int) -> Parts:
    """YOLO-style: Conv -> Sigmoid -> Mul (SiLU) blocks, a C2f split/concat, an SPPF max-pool pyramid."""
    net = Net("silu_yolo", np.random.default_rng(seed))
    c = _silu(net, net.conv("x", "stem", 3, 8, 3, pads=[1, 1, 1, 1], strides=[2, 2]), "stem")
    split = net.init("split_sizes", [4, 4], np.int64)
    net.nodes.append(helper.make_node("Split", [c, split], ["c2f_a", "c2f_b"], name="c2f_split", axis=1))
    b = _silu(net, net.conv("c2f_b", "c2f_conv", 4, 4, 3, pads=[1, 1, 1, 1]), "c2f_conv")
    c = net.node("Concat", ["c2f_a", "c2f_b", b], "c2f_concat", axis=1)
    c = _silu(net, net.conv(c, "c2f_out", 12, 8, 1), "c2f_out")
    p1 = net.node("MaxPool", [c], "sppf_pool1", kernel_shape=[5, 5], pads=[2, 2, 2, 2])
    p2 = net.node("MaxPool", [p1], "sppf_pool2", kernel_shape=[5, 5], pads=[2, 2, 2, 2])
    c = net.node("Concat", [c, p1, p2], "sppf_concat", axis=1)
    c = _silu(net, net.conv(c, "sppf_out", 24, 8, 1), "sppf_out")
    return _parts(net, [3, 16, 16], net.conv(c, "detect", 8, 6, 1), seed)


def tcn_dilated(seed: int) -> Parts:
    """A 1-D TCN: dilated convs (1, 2, 4) with residual Adds whose operands have different scales."""
    net = Net("tcn_dilated", np.random.default_rng(seed))
    h = net.node("Relu", [net.conv("x", "input_proj", 4, 8, 1, std=0.6, dims=1)], "input_relu")
    for i, d in enumerate((1, 2, 4)):
        c = net.conv(h, f"block{i}_conv", 8, 8, 3, dilations=[d], pads=[d, d], std=0.25 + 0.15 * i, dims=1)
        c = net.node("Relu", [c], f"block{i}_relu")
        h = net.node("Add", [h, c], f"block{i}_add")
    starts, ends, axes = (net.init(n, v, np.int64) for n, v in (("last_s", [-1]), ("last_e", [2**31]), ("last_a", [2])))
    last = net.node("Slice", [h, starts, ends, axes], "last_step")
    flat = net.node("Flatten", [last], "flatten", axis=1)
    return _parts(net, [4, 32], _gemm(net, flat, "fc", 8, 2), seed)


def tcn_chomp(seed: int) -> Parts:
    """PyTorch TCN causal convs: Conv1d padded (k-1)*d on both sides, then ``Chomp1d``
    (``x[:, :, :-p]``, a Slice with a negative end) and ``x[:, :, :T]`` (a positive end)."""
    net = Net("tcn_chomp", np.random.default_rng(seed))
    h = net.node("Relu", [net.conv("x", "input_proj", 4, 8, 1, std=0.6, dims=1)], "input_relu")
    zero, axis = net.init("chomp_s", [0], np.int64), net.init("chomp_a", [2], np.int64)
    for i, d in enumerate((1, 2, 4)):
        c = net.conv(h, f"block{i}_conv", 8, 8, 3, dilations=[d], pads=[2 * d, 2 * d], std=0.25 + 0.1 * i, dims=1)
        end = net.init(f"chomp{i}_e", [-2 * d] if i != 1 else [24], np.int64)
        c = net.node("Slice", [c, zero, end, axis], f"block{i}_chomp")
        c = net.node("Relu", [c], f"block{i}_relu")
        h = net.node("Add", [h, c], f"block{i}_add")
    starts, ends = net.init("last_s", [-1], np.int64), net.init("last_e", [2**31], np.int64)
    last = net.node("Slice", [h, starts, ends, axis], "last_step")
    flat = net.node("Flatten", [last], "flatten", axis=1)
    return _parts(net, [4, 24], _gemm(net, flat, "fc", 8, 2), seed)


def fixed_batch_one(seed: int) -> Parts:
    """A batch dimension fixed to 1 (TF/Keras exports): NHWC transpose and Reshape to [1, -1]."""
    net = Net("fixed_batch_one", np.random.default_rng(seed))
    c = net.node("Relu", [net.conv("x", "conv1", 3, 8, 3, pads=[1, 1, 1, 1], strides=[2, 2])], "relu1")
    t = net.node("Transpose", [c], "to_nhwc", perm=[0, 2, 3, 1])
    flat = net.node("Reshape", [t, net.init("flat_shape", [1, -1], np.int64)], "reshape")
    return _parts(net, [3, 8, 8], _gemm(net, flat, "fc", 8 * 4 * 4, 3), seed, batch=1)


def depth_space(seed: int) -> Parts:
    """DepthToSpace (DCR and CRD) and SpaceToDepth between convs; the quantizer leaves them
    between a DequantizeLinear and a QuantizeLinear."""
    net = Net("depth_space", np.random.default_rng(seed))
    c = net.node("Relu", [net.conv("x", "conv1", 3, 16, 3, pads=[1, 1, 1, 1])], "relu1")
    c = net.node("DepthToSpace", [c], "d2s_dcr", blocksize=2, mode="DCR")
    c = net.node("Relu", [net.conv(c, "conv2", 4, 8, 3, pads=[1, 1, 1, 1])], "relu2")
    c = net.node("SpaceToDepth", [c], "s2d", blocksize=2)
    c = net.node("Relu", [net.conv(c, "conv3", 32, 8, 1)], "relu3")
    c = net.node("DepthToSpace", [c], "d2s_crd", blocksize=2, mode="CRD")
    return _parts(net, [3, 4, 4], _head(net, net.conv(c, "conv4", 2, 4, 1), 4, 3), seed)

