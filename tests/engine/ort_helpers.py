"""onnxruntime as the independent oracle of the engine tests.

``run_ort(model, feeds, fused=...)`` runs onnxruntime the way qprobe's ``ort`` and
``ort-fused`` backends do (ORT_DISABLE_ALL; or ORT_ENABLE_ALL with
``session.qdqisint8allowed=1``). ``with_q_outputs`` exposes every QuantizeLinear output
(which never changes what onnxruntime fuses), ``run_engine`` runs a profile.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import helper

from qprobe.backends.engine.backend import EngineBackend


def session(model: onnx.ModelProto, *, fused: bool, save: str | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    if fused:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if save:
        so.optimized_model_filepath = save
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], *, fused: bool) -> dict[str, np.ndarray]:
    s = session(model, fused=fused)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, dict(feeds)), strict=True))


def run_engine(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], profile: str = "onnxruntime",
               overrides: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    backend = EngineBackend.from_spec(profile, dict(overrides or {}))
    return backend.open(ir.from_proto(model)).run(feeds)


def with_q_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose graph outputs also include every QuantizeLinear output (typed)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    inits = {i.name: i for i in out.graph.initializer}
    for n in out.graph.node:
        if n.op_type == "QuantizeLinear" and n.output[0] not in have:
            zp = inits.get(n.input[2]) if len(n.input) > 2 else None
            elem = zp.data_type if zp is not None else onnx.TensorProto.UINT8
            out.graph.output.append(helper.make_tensor_value_info(n.output[0], elem, None))
            have.add(n.output[0])
    return out


def mismatch(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Share of differing elements per tensor (only tensors that differ); dtype or shape changes count as 1.0."""
    out = {}
    for k, ref in b.items():
        got = a[k]
        if got.dtype != ref.dtype or got.shape != ref.shape:
            out[k] = 1.0
        elif (d := float(np.mean(got != ref))) > 0:
            out[k] = d
    return out
