"""A test target that fuses one producer -> consumer pair and gets the fused pair wrong.

``FusingTarget(producer, consumer, offset)`` runs onnxruntime; when the model it is given
computes ``consumer`` from ``producer``'s output inside the model (through that output's
QuantizeLinear/DequantizeLinear) and that tensor is not exposed as a graph output, it
"fuses" the pair and the fused kernel is wrong: an offset after the consumer. Each op alone
(a cut fed the reference's values) and a probed model that exposes the producer's output
are right, like an NPU compiler whose fusion breaks when a tensor is exposed.
"""

from __future__ import annotations

import onnx_ir as ir
from defect_target import add_offset

from qprobe.backends import BackendBase, Capabilities
from qprobe.backends.onnxruntime import OrtBackend, OrtSession


def _fused(model: ir.Model, producer: str, consumer: str) -> bool:
    nodes = {str(n.name).removesuffix("__iso"): n for n in model.graph}
    p, c = nodes.get(producer), nodes.get(consumer)
    if p is None or c is None:
        return False
    outputs = {str(v.name) for v in model.graph.outputs}
    frontier = [p.outputs[0]]
    for _ in range(3):  # op -> Q -> DQ -> consumer
        nxt = []
        for v in frontier:
            if str(v.name) in outputs:
                return False  # exposed: the compiler cannot fuse across it
            for user in v.consumers():
                if user is c:
                    return True
                if user.op_type in ("QuantizeLinear", "DequantizeLinear"):
                    nxt.extend(user.outputs)
        frontier = nxt
    return False


class FusingTarget(BackendBase):
    def __init__(self, producer: str, consumer: str, offset: float) -> None:
        self.producer, self.consumer, self.offset = producer, consumer, offset
        self.spec = f"fusing:{producer}+{consumer}"
        self._ort = OrtBackend(fused=False)

    def capabilities(self) -> Capabilities:
        return Capabilities(probe_sensitive=True)

    def open(self, model: ir.Model) -> OrtSession:
        if _fused(model, self.producer, self.consumer):
            model = add_offset(model, [self.consumer], self.offset)
        return self._ort.open(model)
