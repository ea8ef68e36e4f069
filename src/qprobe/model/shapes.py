"""The one shape-inference wrapper: ONNX shape inference as a help, never a requirement."""

from __future__ import annotations

import onnx


def inferred(proto: onnx.ModelProto | bytes) -> onnx.ModelProto:
    """``proto`` (or its serialized form) with inferred value_info where ONNX can infer it; the
    input itself when it cannot (custom domains, models shape inference rejects): declared types
    still work then."""
    try:
        return onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # onnx raises several unrelated types on models it cannot handle
        return onnx.load_from_string(proto) if isinstance(proto, bytes) else proto


def value_types(proto: onnx.ModelProto, *, already_inferred: bool = False) -> dict[str, onnx.ValueInfoProto]:
    """Every typed value of the main graph, inferred and declared; declarations win.
    ``already_inferred``: ``proto`` is ``inferred``'s result (not inferred again)."""
    g = proto.graph if already_inferred else inferred(proto).graph
    types: dict[str, onnx.ValueInfoProto] = {}
    for vi in [*g.value_info, *g.output, *proto.graph.value_info, *proto.graph.input, *proto.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi
    return types
