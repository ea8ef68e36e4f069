"""The example TCN as an ONNX graph, and what onnxruntime does with it: run, quantize, read scales.

Owns the network's architecture (its shape constants and :func:`build_tcn_graph`), running
a model (or reading its intermediate tensors) on windows with onnxruntime, the int8 quantization recipe, and reading the
scales
around a QDQ Add (:func:`block0_add_ratios`). The weights come from
``tcn_example.build`` (trained by ``tcn_example.train``), which builds the
shipped files from these parts.

**Network** (``window`` ``[N, 8, 1, 64]`` -> ``log_conc`` ``[N, 1]``, opset 17): ``input_proj``
(1x1 Conv); six blocks ``Conv(1x3, dilation d, pads 2d) -> causal Slice -> Add(block
input) -> Relu``, d = 1, 2, ..., 32; last time step (Slice) -> Flatten -> ``head_gemm1`` ->
Relu -> ``head_gemm2``. Conv x7 + Gemm x2.

**Quantization**: ``quantize_static``, QDQ, int8 activations (asymmetric), int8 weights
(symmetric, per channel, as ST recommends), MinMax on 128 calibration windows spread
over the training part, no ``extra_options``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization as q

from qprobe.errors import ModelError
from qprobe.examples.tcn import AddScales

WINDOW, CHANNELS, HIDDEN, OPSET = 64, 8, 32, 17
DILATIONS = (1, 2, 4, 8, 16, 32)
N_CALIBRATION = 128
QUANTIZATION = {
    "tool": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ", "activation_type": "QInt8",
    "weight_type": "QInt8", "per_channel": True, "activation_symmetric": False, "weight_symmetric": True,
    "calibrate_method": "MinMax", "calibration_windows": N_CALIBRATION, "extra_options": None,
}


# --------------------------------------------------------------------------- graph


def _ints(name: str, values: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _node(op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=name, **attrs)


def _block_nodes(i: int, d: int, x: str) -> list[onnx.NodeProto]:
    b = f"block{i}"
    return [
        _node("Conv", [x, f"{b}_conv.weight", f"{b}_conv.bias"], f"{b}_conv_out", f"{b}_conv",
              kernel_shape=[1, 3], dilations=[1, d], pads=[0, 2 * d, 0, 2 * d]),
        _node("Slice", [f"{b}_conv_out", "causal.starts", "causal.ends", "time.axis"], f"{b}_slice_out", f"{b}_slice"),
        _node("Add", [x, f"{b}_slice_out"], f"{b}_add_out", f"{b}_add"),
        _node("Relu", [f"{b}_add_out"], f"{b}_relu_out", f"{b}_relu"),
    ]


def build_tcn_graph(weights: Mapping[str, np.ndarray], *, head: bool = True) -> onnx.ModelProto:
    """The float TCN; without ``head`` its output is the last-step ``features`` ``[N, 32]``."""
    nodes = [_node("Conv", ["window", "input_proj.weight", "input_proj.bias"], "input_proj_out", "input_proj",
                   kernel_shape=[1, 1])]
    x = "input_proj_out"
    for i, d in enumerate(DILATIONS):
        nodes += _block_nodes(i, d, x)
        x = f"block{i}_relu_out"
    nodes += [_node("Slice", [x, "last.starts", "last.ends", "time.axis"], "last_step_out", "last_step"),
              _node("Flatten", ["last_step_out"], "features", "flatten", axis=1)]
    out = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", HIDDEN])
    if head:
        nodes += [_node("Gemm", ["features", "head_gemm1.weight", "head_gemm1.bias"], "head_gemm1_out", "head_gemm1",
                        transB=1),
                  _node("Relu", ["head_gemm1_out"], "head_relu_out", "head_relu"),
                  _node("Gemm", ["head_relu_out", "head_gemm2.weight", "head_gemm2.bias"], "log_conc", "head_gemm2",
                        transB=1)]
        out = helper.make_tensor_value_info("log_conc", TensorProto.FLOAT, ["N", 1])
    inits = [numpy_helper.from_array(np.asarray(weights[k], np.float32), k) for k in sorted(weights)]
    inits += [_ints("causal.starts", [0]), _ints("causal.ends", [WINDOW]), _ints("time.axis", [3]),
              _ints("last.starts", [WINDOW - 1]), _ints("last.ends", [WINDOW])]
    window = helper.make_tensor_value_info("window", TensorProto.FLOAT, ["N", CHANNELS, 1, WINDOW])
    graph = helper.make_graph(nodes, "tcn_gas_forecaster", [window], [out], inits)
    # producer_name is the example's public module (not this one): it is part of the shipped bytes
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="qprobe.examples.tcn", ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------- onnxruntime


def run_tensors(model: onnx.ModelProto, windows: np.ndarray, names: list[str], *,
                batch: int = 32) -> dict[str, np.ndarray]:
    """Float tensors ``names`` of ``model`` on ``windows`` (ORT_DISABLE_ALL, batches like the calibration's)."""
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    probed.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    parts = [session.run(names, {"window": windows[i : i + batch]}) for i in range(0, len(windows), batch)]
    return {n: np.concatenate([p[k] for p in parts]) for k, n in enumerate(names)}


def run_model(model: bytes, windows: np.ndarray, *, fused: bool = False, batch: int = 1024) -> np.ndarray:
    """First output on ``windows``: ORT_DISABLE_ALL, or (``fused``) ORT_ENABLE_ALL with int8 QDQ kernels."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if fused:
        options.add_session_config_entry("session.qdqisint8allowed", "1")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_outputs()[0].name
    parts = [session.run([name], {"window": windows[i : i + batch]})[0] for i in range(0, len(windows), batch)]
    return np.concatenate(parts)


class _CalibrationWindows(q.CalibrationDataReader):
    def __init__(self, windows: np.ndarray, batch: int = 32) -> None:
        self._batches: Iterator[np.ndarray] = iter([windows[i : i + batch] for i in range(0, len(windows), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"window": batch}


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """quantize_static warns on the root logger (and would install a handler there)."""
    root, handler = logging.getLogger(), logging.NullHandler()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def quantize(float_model: bytes, calibration: np.ndarray) -> bytes:
    """int8 QDQ model of ``float_model``, calibrated on ``calibration`` windows (see QUANTIZATION)."""
    with tempfile.TemporaryDirectory(prefix="qprobe-tcn-") as tmp, _quiet_root_logger():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(float_model)
        q.quantize_static(
            str(src), str(dst), _CalibrationWindows(calibration), quant_format=q.QuantFormat.QDQ,
            activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, per_channel=True,
            calibrate_method=q.CalibrationMethod.MinMax, calibration_providers=["CPUExecutionProvider"],
        )
        return dst.read_bytes()


# --------------------------------------------------------------------------- scales of an Add


def _scale_of(inits: Mapping[str, np.ndarray], node: onnx.NodeProto | None, what: str) -> float:
    if node is None or node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.input[1] not in inits:
        raise ModelError(f"{what} has no Q/DQ node with a constant scale next to it; expected a QDQ model")
    scale = inits[node.input[1]]
    if scale.size != 1:
        raise ModelError(f"{what} has a per-channel scale of shape {scale.shape}; expected one per tensor")
    return float(scale.reshape(()))


def block0_add_ratios(model: Path | onnx.ModelProto, node_name: str = "block0_add") -> AddScales:
    """Operand scales (projection, causal conv), output scale and ratios of a QDQ Add, block0's by default."""
    m = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    add = next((n for n in m.graph.node if n.name == node_name), None)
    if add is None or add.op_type != "Add":
        raise ModelError(f"no Add node named {node_name!r} in the model; is it the qprobe TCN example?")
    producers = {o: n for n in m.graph.node for o in n.output}
    consumer = next((n for n in m.graph.node if add.output[0] in n.input), None)
    x, y = (_scale_of(inits, producers.get(i), f"{node_name} input {i!r}") for i in add.input)
    return AddScales(node_name, (x, y), _scale_of(inits, consumer, f"{node_name} output"))

