"""Split an operand into halves added in two steps: ``a + b = (a + b/2) + b/2``.

Half of operand ``b`` is its own codes read at half its scale (exact: one DequantizeLinear
with ``s_b / 2``), so each step sees half its ratio. The first step is a new Add whose output
``t`` is quantized with the scale of the range of ``t`` on the data (from the operands' ranges
without data), capped so that ``t``'s ratio in the second step is inside the envelope (the
clipping that costs is measured); the original op, keeping its name and its output, is the
second step ``t + b/2``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, make_dq, make_q, params_for_range, range_of, with_scale
from qprobe.rewrite.requant import Fit, eltwise_refusal, fit_zero_point, operand_values, ratios_text
from qprobe.rewrite.site import Operand, Site


def _halves(site: Site) -> tuple[Operand, Operand]:
    """(the operand to halve: the larger scale, the other)."""
    a, b = site.operands
    return (a, b) if a.quant.scale[0] >= b.quant.scale[0] else (b, a)


class SplitOperand(RewritePass):
    name = "split-operand"
    summary = "split the operand with the largest ratio into two halves added in two steps"

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        why = eltwise_refusal(ctx, site, ("Add",))
        if why is not None:
            return why
        big, other = _halves(site)
        s_o, env = site.out_quant.scale[0], ctx.envelope
        if not env.contains(0.5 * big.quant.scale[0] / s_o):
            return (f"half of {big.codes.name} still has ratio {0.5 * big.quant.scale[0] / s_o:.3f}, outside the "
                    f"envelope")
        if max(other.quant.scale[0], 0.5 * big.quant.scale[0]) / env.aim() > s_o * env.aim():
            return "no scale for the intermediate sum puts both steps inside the envelope"
        return None

    def _intermediate(self, ctx: RewriteContext, site: Site) -> Fit:
        big, other = _halves(site)
        vb, vo = operand_values(ctx, big), operand_values(ctx, other)
        if vb is not None and vo is not None:
            t = vo + 0.5 * np.broadcast_to(vb, np.broadcast_shapes(vb.shape, vo.shape))
            q = params_for_range(float(t.min()), float(t.max()), other.quant.dtype)
        else:
            t = None
            (lb, hb), (lo, ho) = range_of(big.quant), range_of(other.quant)
            q = params_for_range(lo + 0.5 * lb, ho + 0.5 * hb, other.quant.dtype)
        cap = site.out_quant.scale[0] * ctx.envelope.aim()
        floor = max(other.quant.scale[0], 0.5 * big.quant.scale[0]) / ctx.envelope.aim()
        scale = min(max(q.scale[0], floor), cap)
        if scale == q.scale[0]:
            return Fit(q, 0.0 if t is not None else None, 0.0 if t is not None else None, 0 if t is None else t.size)
        return fit_zero_point(t, scale, with_scale(q, scale))

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        big, other = _halves(site)
        fit = self._intermediate(ctx, site)
        half_q = with_scale(big.quant, 0.5 * big.quant.scale[0])
        half = make_dq(model, names, big.codes, half_q, f"{site.name}_half")
        ins: list[ir.Value | None] = [None, None]
        ins[big.index], ins[other.index] = half.outputs[0], other.dq.outputs[0]
        step = ir.Node("", "Add", ins, outputs=[ir.Value(name=names(f"{site.name}_half_out"))],
                       name=names(f"{site.name}_half_step"))
        qt = make_q(model, names, step.outputs[0], fit.quant, f"{site.name}_half_out")
        dqt = make_dq(model, names, qt.outputs[0], fit.quant, f"{site.name}_half_out")
        model.graph.insert_before(site.node, [half, step, qt, dqt])
        site.node.replace_input_with(other.index, dqt.outputs[0])
        site.node.replace_input_with(big.index, half.outputs[0])
        s_o, s_t = site.out_quant.scale[0], fit.quant.scale[0]
        r1 = (other.quant.scale[0] / s_t, half_q.scale[0] / s_t)
        r2 = (s_t / s_o, half_q.scale[0] / s_o)
        return Edit(
            f"{site.name} = ({other.codes.name} + {big.codes.name}/2) + {big.codes.name}/2: ratios "
            f"{ratios_text(site.ratios)} -> step 1 {ratios_text(r1)}, step 2 {ratios_text(r2)}; "
            + fit.text("the intermediate sum"),
            [site.name], fit.measures("intermediate"),
        )
