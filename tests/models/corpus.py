"""The test-model corpus: small int8 models that reproduce the export patterns people ship.

``CORPUS[name].build(directory)`` writes ``<name>_int8.onnx``, ``<name>_float.onnx`` and
``<name>_calibration.npz`` and returns a ``Built``. Every model is built in code
(onnx.helper for the float graph, ``onnxruntime.quantization.quantize_static`` with a
fixed-seed calibration reader, and graph rewrites for what the quantizer cannot write),
deterministically for the entry's seed.

``Built.calibration`` holds samples (axis 0) that the **int8** model takes as they are:
float inputs for most models, input codes for models with integer graph inputs (their
float model's calibration data quantized by the input's QuantizeLinear). The same samples
calibrated the quantizer.

``Built.integer_reference`` is True when ``ort-fused`` computes every quantized tensor of
the model with integer kernels (QLinear*, or data movement on codes), so that
``engine:onnxruntime`` must match it bit for bit; False when some quantized tensor is a
QuantizeLinear of a float computation (a float island, or a QDQ op onnxruntime does not
fuse), whose codes may differ by one at rounding ties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from models import cnn, exports, islands, transformer
from models.parts import Parts


@dataclass(frozen=True)
class Built:
    int8: Path
    float: Path
    calibration: Path
    pattern: str
    integer_reference: bool

    def samples(self) -> dict[str, np.ndarray]:
        with np.load(self.calibration) as z:
            return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    pattern: str
    integer_reference: bool
    make: Callable[[int], Parts]
    seed: int = 0

    def build(self, directory: Path) -> Built:
        directory.mkdir(parents=True, exist_ok=True)
        parts = self.make(self.seed)
        paths = [directory / f"{self.name}_{k}" for k in ("int8.onnx", "float.onnx", "calibration.npz")]
        onnx.save(parts.int8_model, paths[0])
        onnx.save(parts.float_model, paths[1])
        np.savez(paths[2], **parts.samples)
        return Built(paths[0], paths[1], paths[2], self.pattern, self.integer_reference)


_ENTRIES = [
    CorpusEntry("flatten_view", "PyTorch x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape, "
                "dynamic batch", True, cnn.flatten_view),
    CorpusEntry("reducemean_pool", "ReduceMean global pooling (keepdims=0) between DequantizeLinear and "
                "QuantizeLinear", False, cnn.reducemean_pool),
    CorpusEntry("depthwise_separable", "depthwise 3x3 + pointwise 1x1, ReLU6 as Clip", True, cnn.depthwise_separable),
    CorpusEntry("mobilenetv2_block", "MobileNetV2 inverted residual (expand, depthwise, linear project, Add)", True,
                cnn.mobilenetv2_block),
    CorpusEntry("silu_yolo", "YOLO SiLU Conv -> Sigmoid -> Mul chains, C2f Split/Concat, SPPF MaxPools", True,
                cnn.silu_yolo),
    CorpusEntry("tcn_dilated", "1-D dilated TCN with residual Adds of different operand scales", True,
                cnn.tcn_dilated),
    CorpusEntry("tcn_chomp", "PyTorch TCN causal convs: both-sides padding cut by Chomp1d (Slice with a negative "
                "end) and by x[:, :, :T]; onnxruntime leaves those Slices in float (DQ -> Slice -> Q)", False,
                cnn.tcn_chomp),
    CorpusEntry("fixed_batch_one", "batch dimension fixed to 1, NHWC Transpose, Reshape [1, -1]", True,
                cnn.fixed_batch_one),
    CorpusEntry("depth_space", "DepthToSpace (DCR, CRD) and SpaceToDepth between convs", True, cnn.depth_space),
    CorpusEntry("qoperator_constant", "QOperator uint8 with weights, scales and zero points in Constant nodes", True,
                exports.qoperator_constant),
    CorpusEntry("oe_uint8_io", "ST Edge AI OE: uint8 graph I/O, float32 Conv/Gemm weights inside QDQ groups", True,
                exports.oe_uint8_io),
    CorpusEntry("oe_float_io", "OE with float I/O: float weights and biases, a per-channel weight with a float bias, "
                "a float MatMul weight", False, exports.oe_float_io),
    CorpusEntry("attention", "attention MatMul -> Softmax -> MatMul with Reshape/Transpose heads, float "
                "LayerNormalization", False, transformer.attention),
    CorpusEntry("einsum", "Einsum left between DequantizeLinear and QuantizeLinear", False, transformer.einsum),
    CorpusEntry("norm_islands", "BatchNormalization and InstanceNormalization in float islands", False,
                islands.norm_islands),
    CorpusEntry("float_math", "GELU via Erf, Where/Greater/Less/Equal/Neg/Exp/Pow/Sqrt and Expand to a Shape, in "
                "float", False, islands.float_math),
    CorpusEntry("layernorm_decomposed", "LayerNorm decomposed into ReduceMean/Sub/Pow/Sqrt/Div, ReduceSum "
                "keepdims=0", False, islands.layernorm_decomposed),
]
CORPUS: dict[str, CorpusEntry] = {e.name: e for e in _ENTRIES}


def build_all(directory: Path) -> dict[str, Built]:
    return {name: entry.build(directory) for name, entry in CORPUS.items()}
