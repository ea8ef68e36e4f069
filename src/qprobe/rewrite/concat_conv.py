"""Concat + 1x1 Conv in place of the Add (a workaround tried by hand in the motivating case).

``Add(a, b)`` becomes ``Conv1x1(Concat(a, b), [I I])`` (``[I -I]`` for Sub): the Concat is
quantized over the union of the operands' ranges (as calibration would give it), the weights
are int8 codes 1 (and -1) with per-channel scale 1.0, so they are exact, and no bias. The
Conv writes the Add's output tensor (same name) into the Add's QuantizeLinear. The Concat
requantizes each operand to its own scale: on a target that requantizes through the same
unit as the Add, that is where an out-of-envelope ratio would reappear.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, add_const, make_dq, make_q, params_for_range, range_of
from qprobe.rewrite.shapes import value_shapes
from qprobe.rewrite.site import Site


class ConcatConv(RewritePass):
    name = "concat-conv"
    summary = "replace the Add by a Concat of its operands and a 1x1 Conv with weights [I I]"
    motivating = True

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        if site.node.op_type not in ("Add", "Sub") or len(site.node.inputs) != 2 or len(site.operands) != 2:
            return f"{site.name} is not a two-operand Add/Sub of quantized tensors"
        shapes = value_shapes(ctx.model)
        a, b = (shapes.get(o.dq.outputs[0].name or "") for o in site.operands)
        if a is None or b is None or a != b:
            return f"the operands of {site.name} need equal known shapes (found {a} and {b}); no broadcasting"
        if len(a) not in (3, 4) or a[1] < 1:
            return f"the operands of {site.name} have shape {a}; a 1x1 Conv needs [N, C, ...] of rank 3 or 4"
        return None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        shape = value_shapes(ctx.model)[site.operands[0].dq.outputs[0].name or ""]
        channels, spatial = shape[1], len(shape) - 2
        ranges = [range_of(o.quant) for o in site.operands]
        qc = params_for_range(min(r[0] for r in ranges), max(r[1] for r in ranges), site.out_quant.dtype)
        concat = ir.Node("", "Concat", [o.dq.outputs[0] for o in site.operands], {"axis": ir.AttrInt64("axis", 1)},
                         outputs=[ir.Value(name=names(f"{site.name}_concat_out"))], name=names(f"{site.name}_concat"))
        qn = make_q(model, names, concat.outputs[0], qc, f"{site.name}_concat_out")
        dqn = make_dq(model, names, qn.outputs[0], qc, f"{site.name}_concat_out")
        wdq = _weights(model, names, site, channels, spatial)
        conv = ir.Node("", "Conv", [dqn.outputs[0], wdq.outputs[0]],
                       {"kernel_shape": ir.AttrInt64s("kernel_shape", [1] * spatial)},
                       outputs=[ir.Value(name=names(f"{site.name}_conv_out"))], name=names(f"{site.name}_conv"))
        model.graph.insert_before(site.node, [concat, qn, dqn, wdq, conv])
        out_name = site.node.outputs[0].name
        site.node.outputs[0].replace_all_uses_with(conv.outputs[0])
        model.graph.remove(site.node, safe=True)
        conv.outputs[0].name = out_name
        ratios = ", ".join(f"{o.quant.scale[0] / qc.scale[0]:.3f}" for o in site.operands)
        first = site.chain[0] if site.chain else site.q
        return Edit(
            f"{site.name} -> Concat (scale {qc.scale[0]:.6g}: it requantizes the operands at ratios {ratios}) + 1x1 "
            f"Conv "
            f"[I {'-I' if site.node.op_type == 'Sub' else 'I'}] writing {out_name} into {site.q.name}",
            [first.name or ""],
        )


def _weights(model: ir.Model, names: Namer, site: Site, channels: int, spatial: int) -> ir.Node:
    """DequantizeLinear of int8 weight codes [C, 2C, 1...]: 1 on both identities (-1 on the second for Sub)."""
    codes = np.zeros((channels, 2 * channels) + (1,) * spatial, dtype=np.int8)
    sign = -1 if site.node.op_type == "Sub" else 1
    for c in range(channels):
        codes[(c, c) + (0,) * spatial] = 1
        codes[(c, channels + c) + (0,) * spatial] = sign
    w = add_const(model, names, f"{site.name}_conv.weight_quantized", codes)
    s = add_const(model, names, f"{site.name}_conv.weight_scale", np.ones(channels, np.float32))
    z = add_const(model, names, f"{site.name}_conv.weight_zero_point", np.zeros(channels, np.int8))
    return ir.Node("", "DequantizeLinear", [w, s, z], {"axis": ir.AttrInt64("axis", 0)},
                   outputs=[ir.Value(name=names(f"{site.name}_conv.weight_DequantizeLinear_Output"))],
                   name=names(f"{site.name}_conv.weight_DequantizeLinear"))
