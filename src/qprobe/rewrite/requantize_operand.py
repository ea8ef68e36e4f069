"""Requantize one operand into the envelope: ``DQ -> Q -> DQ`` at a new scale in front of the op.

The operand outside the envelope is read at ``scale = output scale * aim`` (the largest ratio
inside), with the zero point that clips the fewest of its values on the data; the clipping
it costs is measured there and reported. Refuses when more than one operand is outside (then
``requantize-before`` requantizes every one).
"""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer
from qprobe.rewrite.requant import eltwise_refusal, fit_zero_point, insert_requantize, operand_values, outside
from qprobe.rewrite.site import Site


class RequantizeOperand(RewritePass):
    name = "requantize-operand"
    summary = "requantize the operand outside the envelope to the largest scale inside it (clipping measured)"

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        why = eltwise_refusal(ctx, site)
        if why is None and len(outside(ctx, site)) > 1:
            return f"both operands of {site.name} are outside the envelope; requantize-before handles that"
        return why

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        operand = site.operands[outside(ctx, site)[0]]
        scale = site.out_quant.scale[0] * ctx.envelope.aim()
        fit = fit_zero_point(operand_values(ctx, operand), scale, operand.quant)
        added = insert_requantize(model, names, site, operand, fit.quant)
        ratio = fit.quant.scale[0] / site.out_quant.scale[0]
        return Edit(
            f"{site.name} reads {operand.codes.name} requantized {operand.quant.scale[0]:.6g} -> "
            f"{fit.quant.scale[0]:.6g} "
            f"(ratio {ratio:.3f}, zero point {fit.quant.zero_point[0]}); {fit.text('the narrower range')}",
            [site.name, *added], fit.measures("operand"),
        )
