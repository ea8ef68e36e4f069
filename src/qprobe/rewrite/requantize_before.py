"""Insert an explicit requantize before the op: every operand read at the output's scale (ratio 1).

The op then adds codes of one scale, the simplest work an eltwise unit does; each operand
whose scale differs from the output's is requantized to it (``DQ -> Q -> DQ``), with the
zero point that clips the fewest of its values on the data. An operand wider than the
output's range clips: that cost is measured on the data and reported.
"""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer
from qprobe.rewrite.requant import eltwise_refusal, fit_zero_point, insert_requantize, operand_values
from qprobe.rewrite.site import Site


class RequantizeBefore(RewritePass):
    name = "requantize-before"
    summary = "insert an explicit requantize of every operand to the op's output scale before the op"

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        return eltwise_refusal(ctx, site)

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        scale = site.out_quant.scale[0]
        added, texts, measures = [], [], {}
        for operand in site.operands:
            if operand.quant.scale[0] == scale:
                continue
            fit = fit_zero_point(operand_values(ctx, operand), scale, operand.quant)
            added += insert_requantize(model, names, site, operand, fit.quant)
            texts.append(fit.text(f"{operand.codes.name} (zero point {fit.quant.zero_point[0]})"))
            measures.update(fit.measures(f"operand{operand.index}"))
        return Edit(f"{site.name} reads every operand at its output scale {scale:.6g}: " + "; ".join(texts),
                    [site.name, *added], measures)
