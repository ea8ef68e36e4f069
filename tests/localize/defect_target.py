"""Test targets: onnxruntime on a copy of each opened model with a known defect injected.

``DefectTarget`` adds a constant offset after one named node's output in every model it
opens (the whole model, probed models, cuts, and the ``__iso`` copies that merged cuts
make), so that node *introduces* an error and every op downstream only carries it.
With ``vanish_when_probed`` it behaves like an NPU compiler whose fusion breaks when a
tensor is exposed: the defect disappears when the node's output codes are a graph output
*and* still consumed inside the model (a probed whole model), and stays in cuts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from qprobe.backends import BackendBase, Capabilities
from qprobe.backends.onnxruntime import OrtBackend, OrtSession
from qprobe.model.loader import model_from_proto, to_proto
from qprobe.model.qoperator import SIGNATURES


def _exposed_and_consumed(g: onnx.GraphProto, out: str) -> bool:
    q = next((n.output[0] for n in g.node if out in n.input and n.op_type == "QuantizeLinear"), out)
    return q in {o.name for o in g.output} and any(q in n.input for n in g.node)


def add_offset(model: ir.Model, nodes: Sequence[str], offset: float, vanish_when_probed: bool = False) -> ir.Model:
    """``model`` with ``out := out + offset`` after the first output of each node in ``nodes``."""
    proto = to_proto(model)
    g = proto.graph
    new_nodes: list[onnx.NodeProto] = []
    for n in list(g.node):
        new_nodes.append(n)
        base = n.name.removesuffix("__iso")
        if base in nodes and not (vanish_when_probed and _exposed_and_consumed(g, n.output[0])):
            out = n.output[0]
            n.output[0] = out + "_raw"
            c = numpy_helper.from_array(np.array(offset, dtype=np.float32), f"{n.name}_defect_c")
            g.initializer.append(c)
            sig = SIGNATURES.get(n.op_type)
            if sig is None or sig.output is None:
                new_nodes.append(helper.make_node("Add", [out + "_raw", c.name], [out], name=f"{n.name}_defect"))
                continue
            # a QOperator node writes codes: shift its real value through its own output quantization
            s, z = (n.input[i] for i in sig.output)
            new_nodes += [
                helper.make_node("DequantizeLinear", [out + "_raw", s, z], [out + "_real"], name=f"{n.name}_defect_dq"),
                helper.make_node("Add", [out + "_real", c.name], [out + "_moved"], name=f"{n.name}_defect"),
                helper.make_node("QuantizeLinear", [out + "_moved", s, z], [out], name=f"{n.name}_defect_q"),
            ]
    del g.node[:]
    g.node.extend(new_nodes)
    return model_from_proto(proto)


class DefectTarget(BackendBase):
    def __init__(self, nodes: Sequence[str], offset: float, caps: Capabilities | None = None,
                 vanish_when_probed: bool = False) -> None:
        self.nodes, self.offset, self.vanish = list(nodes), offset, vanish_when_probed
        self.spec = f"defect:{','.join(nodes)}"
        self._caps = caps or Capabilities()
        self._ort = OrtBackend(fused=False)
        self.opened_models: list[ir.Model] = []

    def capabilities(self) -> Capabilities:
        return self._caps

    def open(self, model: ir.Model) -> OrtSession:
        self.opened_models.append(model)
        return self._ort.open(add_offset(model, self.nodes, self.offset, self.vanish))
