"""What a rewrite costs: ops and MACs added, parameter bytes, ops moved off the accelerator.

Measured by comparing the model before and after (``cost_of``), so that a pass cannot
misstate it; only the ops that leave the accelerator (float or int16 ops on an int8 NPU)
are declared by the pass, because the graph alone does not say where an op runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import onnx
import onnx_ir as ir

from qprobe.model.loader import to_proto

BOUNDARY_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Constant"})
MAC_OPS = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose"})


@dataclass(frozen=True)
class Cost:
    ops_added: int = 0  # compute ops (not Q/DQ/Constant); negative when ops are removed
    qdq_added: int = 0
    macs_added: int = 0  # per sample
    param_bytes_added: int = 0
    ops_off_accelerator: int = 0

    def key(self) -> tuple[int, int, int, int, int]:
        """Ranking order: leaving the accelerator first, then ops, MACs, bytes, Q/DQ nodes."""
        return (self.ops_off_accelerator, self.ops_added, self.macs_added, self.param_bytes_added, self.qdq_added)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Cost:
        return cls(**{k: int(v) for k, v in d.items()})

    def text(self) -> str:
        parts = [f"{self.ops_added:+d} ops", f"{self.macs_added:+,d} MACs", f"{self.param_bytes_added:+,d} B"]
        if self.ops_off_accelerator:
            parts.append(f"{self.ops_off_accelerator} op(s) off the accelerator")
        return ", ".join(parts)


def cost_of(before: ir.Model, after: ir.Model, off_accelerator: int = 0) -> Cost:
    b, a = _stats(before), _stats(after)
    return Cost(a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3], off_accelerator)


def _stats(model: ir.Model) -> tuple[int, int, int, int]:
    ops = sum(1 for n in model.graph if n.op_type not in BOUNDARY_OPS)
    qdq = sum(1 for n in model.graph if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    params = sum(int(v.const_value.nbytes) for v in model.graph.initializers.values() if v.const_value is not None)
    return ops, qdq, _macs(model), params


def _macs(model: ir.Model) -> int:
    if not any(n.op_type in MAC_OPS for n in model.graph):
        return 0
    proto = to_proto(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph
    except Exception:  # shapes are a help: an unknown shape counts no MACs
        return 0
    shapes = {vi.name: _dims(vi) for vi in [*inferred.value_info, *inferred.output, *inferred.input]}
    shapes.update({t.name: list(t.dims) for t in inferred.initializer})
    return sum(_node_macs(n, shapes) for n in inferred.node if n.op_type in MAC_OPS)


def _dims(vi: onnx.ValueInfoProto) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int] | None]) -> int:
    out = shapes.get(node.output[0])
    w = shapes.get(node.input[1]) if len(node.input) > 1 else None
    if not out or not w or any(d < 0 for d in out[1:]) or any(d < 0 for d in w):
        return 0
    per_output = math.prod(w[1:]) if node.op_type in ("Conv", "ConvTranspose") else _inner(node, w)
    return math.prod(out[1:]) * per_output


def _inner(node: onnx.NodeProto, w: list[int]) -> int:
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return w[-1] if trans_b else w[0]
    return w[-2] if len(w) >= 2 else w[0]
