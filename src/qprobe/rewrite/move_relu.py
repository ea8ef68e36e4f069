"""Move a Relu that is fused into the op's output out of it.

A QDQ quantizer folds ``Add -> Relu`` into the output's range ``[0, M]`` (zero point at the
lowest code), or keeps the Relu between the op and its QuantizeLinear. Here the op gets its
own output quantization, ``QuantizeLinear(s_p) -> DequantizeLinear``, then the Relu, then the
original QuantizeLinear (same scale as before for every consumer). ``s_p`` is the smallest
scale that puts every operand ratio inside the envelope (at least the output's), with the top
of its range at the output's top: values below the new range's bottom are negative, so the
Relu maps them to 0 exactly as before; the cost is the coarser grid of ``s_p`` on the positive side.
"""

from __future__ import annotations

import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, make_dq, make_q, range_of, with_scale
from qprobe.rewrite.requant import eltwise_refusal, ratios_text
from qprobe.rewrite.site import Site


def fused_relu(site: Site) -> str | None:
    """How a Relu is fused into the op's output ("explicit"/"implicit"), None when there is none."""
    if any(n.op_type in ("Relu", "Clip") for n in site.chain):
        return "explicit"
    q = site.out_quant
    return "implicit" if q.zero_point[0] == q.qmin else None


class MoveRelu(RewritePass):
    name = "move-relu"
    summary = "move a Relu fused into the op's output after it, with the op's own wider output range"

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        why = eltwise_refusal(ctx, site)
        if why is None and fused_relu(site) is None:
            q = site.out_quant
            return f"no Relu is fused into {site.name}: its output range holds negatives (zero point {q.zero_point[0]})"
        return why

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        q_out = site.out_quant
        scale = max(q_out.scale[0], max(o.quant.scale[0] for o in site.operands) / ctx.envelope.aim())
        top = range_of(q_out)[1]
        pre = with_scale(q_out, scale, int(round(q_out.qmax - top / scale)))
        value = site.node.outputs[0]
        qn = make_q(model, names, value, pre, f"{site.name}_prerelu")
        dqn = make_dq(model, names, qn.outputs[0], pre, f"{site.name}_prerelu")
        first = site.chain[0] if site.chain else site.q
        model.graph.insert_before(first, [qn, dqn])
        added = [qn.name or "", dqn.name or ""]
        if site.chain:
            first.replace_input_with(0, dqn.outputs[0])
        else:
            relu = ir.Node("", "Relu", [dqn.outputs[0]], outputs=[ir.Value(name=names(f"{site.name}_relu_out"))],
                           name=names(f"{site.name}_relu"))
            model.graph.insert_before(site.q, [relu])
            site.q.replace_input_with(0, relu.outputs[0])
            added.append(relu.name or "")
        ratios = tuple(o.quant.scale[0] / scale for o in site.operands)
        return Edit(
            f"{site.name} gets its own output quantization (scale {scale:.6g}, x{scale / q_out.scale[0]:.3f} the "
            f"output's; ratios {ratios_text(site.ratios)} -> {ratios_text(ratios)}), then the {fused_relu(site)} Relu, "
            f"then {site.q.name} as before", [first.name or ""], {"pre_relu_scale_factor": scale / q_out.scale[0]},
        )
