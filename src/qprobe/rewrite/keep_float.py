"""Keep the op in float: a CPU fallback on targets with mixed execution (ranked after int8 fixes).

An ``Identity`` between the op (with its Relu/Clip) and its QuantizeLinear breaks the
``DequantizeLinear -> op -> QuantizeLinear`` pattern that integer kernels are mapped from, so the
op computes on float tensors (on the STM32N6: a software epoch on the Cortex-M55, with the
DequantizeLinear/QuantizeLinear around it). Its inputs and output stay int8 codes, and the
float result is the reference's float computation. onnxruntime removes the Identity and fuses
the group again, which leaves the reference unchanged.
"""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer
from qprobe.rewrite.site import Site


class KeepFloat(RewritePass):
    name = "keep-float"
    summary = "run the op on float tensors (a CPU fallback: costs latency, ranked after every int8 fix)"
    float_exact = True
    int8 = False

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        src = site.float_out()
        barrier = ir.Node("", "Identity", [src], outputs=[ir.Value(name=names(f"{src.name}_float"))],
                          name=names(f"{site.name}_float_barrier"))
        model.graph.insert_before(site.q, [barrier])
        site.q.replace_input_with(0, barrier.outputs[0])
        return Edit(f"{site.name} computes in float (an Identity before {site.q.name} stops its integer fusion)",
                    [site.q.name or ""], off_accelerator=1)
