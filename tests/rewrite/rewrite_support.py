"""Helpers of the rewrite tests, all on plain onnx / onnxruntime (independent of qprobe's views)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from qprobe.model.loader import to_proto
from qprobe.rewrite import RatioEnvelope

# The envelope from the closed form of the arith16-wrap hypothesis (a 16-bit coefficient
# round(r * 2**14) fits below r = 32767.5 / 2**14), not measured by qprobe: the passes are
# tested against an independent statement of where the unit is exact.
BOUNDARY = 32767.5 / 2**14
ENVELOPE = RatioEnvelope("eltwise", ((0.0, BOUNDARY),), BOUNDARY, "Add exact below 2.0 (closed form)")
CONCAT = RatioEnvelope("concat", ((0.0, BOUNDARY),), BOUNDARY, "Concat exact below 2.0 (closed form)")


def ort_run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray], extra: list[str] | None = None,
            fused: bool = False) -> dict[str, np.ndarray]:
    """Every graph output (plus ``extra`` tensors) with onnxruntime: float DQ -> op -> Q, or fused."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra or [] if n not in have)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if fused:
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def proto_of(model: object) -> onnx.ModelProto:
    return to_proto(model)  # type: ignore[arg-type]


def inits(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def node(proto: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in proto.graph.node if n.name == name)


def producer(proto: onnx.ModelProto, tensor: str) -> onnx.NodeProto | None:
    return next((n for n in proto.graph.node if tensor in n.output), None)


def qparams(proto: onnx.ModelProto, qdq: onnx.NodeProto) -> tuple[float, int, np.dtype]:
    """(scale, zero point, dtype) of a per-tensor Q/DQ node, read from the initializers."""
    i = inits(proto)
    z = i[qdq.input[2]]
    return float(i[qdq.input[1]].reshape(())), int(z.reshape(())), z.dtype


def operand_params(proto: onnx.ModelProto, op: onnx.NodeProto) -> list[tuple[float, int, np.dtype]]:
    """Quantization of each input of ``op`` (through the DequantizeLinear that feeds it)."""
    out = []
    for t in op.input:
        dq = producer(proto, t)
        assert dq is not None and dq.op_type == "DequantizeLinear", t
        out.append(qparams(proto, dq))
    return out


def output_q(proto: onnx.ModelProto, op: onnx.NodeProto) -> onnx.NodeProto:
    """The QuantizeLinear that reads ``op``'s output, through Relu/Clip/Identity."""
    t = op.output[0]
    while True:
        user = next(n for n in proto.graph.node if t in n.input)
        if user.op_type == "QuantizeLinear":
            return user
        t = user.output[0]


def eltwise_model(path: Path, op: str, scales: tuple[float, float], out_scale: float, *, relu: bool = False,
                  zps: tuple[int, int] = (3, -5), out_zp: int = 7, dtype: int = TensorProto.INT8) -> Path:
    """a, b -> Q/DQ each -> op -> [Relu] -> Q/DQ -> y, shapes [N, 4, 1, 8]; written to ``path``."""
    np_t = helper.tensor_dtype_to_np_dtype(dtype)
    tensors = [numpy_helper.from_array(np.float32(s), f"s{k}") for k, s in enumerate(scales)]
    tensors += [numpy_helper.from_array(np.array(z, np_t), f"z{k}") for k, z in enumerate(zps)]
    tensors += [numpy_helper.from_array(np.float32(out_scale), "so"),
                numpy_helper.from_array(np.array(out_zp, np_t), "zo")]
    nodes = []
    for k, x in enumerate("ab"):
        nodes += [helper.make_node("QuantizeLinear", [x, f"s{k}", f"z{k}"], [f"{x}_q"], name=f"{x}_Q"),
                  helper.make_node("DequantizeLinear", [f"{x}_q", f"s{k}", f"z{k}"], [f"{x}_dq"], name=f"{x}_DQ")]
    nodes.append(helper.make_node(op, ["a_dq", "b_dq"], ["s"], name="op"))
    last = "s"
    if relu:
        nodes.append(helper.make_node("Relu", ["s"], ["r"], name="relu"))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "so", "zo"], ["y_q"], name="y_Q"),
              helper.make_node("DequantizeLinear", ["y_q", "so", "zo"], ["y"], name="y_DQ")]
    shape = ["N", 4, 1, 8]
    graph = helper.make_graph(nodes, "eltwise", [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape) for x
                                                 in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], tensors)
    opset = 21 if dtype in (TensorProto.INT16, TensorProto.UINT16) else 17
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=10 if opset == 21 else 8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path
