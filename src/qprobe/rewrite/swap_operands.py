"""Swap the operands of a commutative op (exact in float): tests whether the unit treats its inputs alike."""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer
from qprobe.rewrite.site import Site

COMMUTATIVE = ("Add", "Mul")


class SwapOperands(RewritePass):
    name = "swap-operands"
    summary = "swap the op's two operands (a unit whose X and Y inputs differ may compute one order right)"
    float_exact = True

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        if site.node.op_type not in COMMUTATIVE:
            return f"{site.name} is a {site.node.op_type}, which is not commutative"
        if len(site.node.inputs) != 2:
            return f"{site.name} has {len(site.node.inputs)} inputs; swapping needs two"
        return None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        a, b = site.node.inputs
        site.node.replace_input_with(0, b)
        site.node.replace_input_with(1, a)
        return Edit(f"{site.name} reads ({b.name if b else ''}, {a.name if a else ''}) instead of the reverse order",
                    [site.name])
