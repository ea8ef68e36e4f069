"""One shared scale for the operands (a workaround tried by hand in the motivating case).

Both operands are quantized with the parameters of the union of their ranges (no clipping),
as pinning one scale on both would: their codes, the codes data movement copies from them
at the same parameters, and every DequantizeLinear reading those. The operand-to-output
ratios are then equal, but each is the larger operand's: sharing alone does not bring a
ratio into an envelope.
"""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, code_family, params_for_range, range_of, retarget
from qprobe.rewrite.requant import ratios_text
from qprobe.rewrite.site import Site


class SharedScale(RewritePass):
    name = "shared-scale"
    summary = "quantize the operands with one shared scale (the union of their ranges)"
    motivating = True

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        if len(site.operands) < 2:
            return f"{site.name} has {len(site.operands)} quantized operand(s); sharing a scale needs two"
        if len({(o.quant.scale, o.quant.zero_point) for o in site.operands}) == 1:
            return f"the operands of {site.name} already share scale {site.operands[0].quant.scale[0]:.6g}"
        if len({o.quant.dtype for o in site.operands}) != 1:
            return f"the operands of {site.name} have different integer types"
        return None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        ranges = [range_of(o.quant) for o in site.operands]
        q = params_for_range(min(r[0] for r in ranges), max(r[1] for r in ranges), site.operands[0].quant.dtype)
        families = {v.name: v for o in site.operands for v in code_family(o.codes)}
        changed = retarget(model, names, families.values(), q)
        ratio = q.scale[0] / site.out_quant.scale[0]
        return Edit(
            f"operands of {site.name} share scale {q.scale[0]:.6g} (zero point {q.zero_point[0]}) over "
            f"{len(families)} code tensor(s): ratios {ratios_text(site.ratios)} -> {ratio:.3f} for both",
            [site.name, *changed],
        )
