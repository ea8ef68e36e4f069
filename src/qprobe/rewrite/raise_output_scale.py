"""Raise the op's output scale until every operand ratio is inside the envelope.

The output codes (and the codes data movement copies from them at the same parameters)
get ``scale = max(operand scales) / aim``, zero point unchanged, so the real range grows by
the same factor; every DequantizeLinear that reads them follows. The cost is resolution:
the output's LSB grows by that factor.
"""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, code_family, retarget, with_scale
from qprobe.rewrite.requant import eltwise_refusal, ratios_text
from qprobe.rewrite.site import Site


class RaiseOutputScale(RewritePass):
    name = "raise-output-scale"
    summary = "raise the op's output scale until every operand-to-output ratio is inside the envelope"

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        return eltwise_refusal(ctx, site)

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        old = site.out_quant.scale[0]
        new = max(o.quant.scale[0] for o in site.operands) / ctx.envelope.aim()
        q = with_scale(site.out_quant, new)
        family = code_family(site.out_codes)
        changed = retarget(model, names, family, q)
        ratios = tuple(o.quant.scale[0] / q.scale[0] for o in site.operands)
        return Edit(
            f"{site.name}'s output scale {old:.6g} -> {q.scale[0]:.6g} (x{q.scale[0] / old:.3f}): operand ratios "
            f"{ratios_text(site.ratios)} -> {ratios_text(ratios)}; {len(family)} code tensor(s) and their readers "
            f"follow",
            [site.name, *changed], {"output_scale_factor": q.scale[0] / old},
        )
