"""Tensor shapes of a model from ONNX shape inference (symbolic dimensions as -1)."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from qprobe.model.loader import to_proto


def value_shapes(model: ir.Model) -> dict[str, tuple[int, ...]]:
    proto = to_proto(model)
    try:
        graph = onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph
    except Exception:  # inference is a help: unknown shapes make the passes that need them refuse
        graph = proto.graph
    out: dict[str, tuple[int, ...]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    for init in graph.initializer:
        out[init.name] = tuple(init.dims)
    return out
