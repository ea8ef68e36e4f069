"""Fold the residual into the conv: ``x + Slice(Conv_W(x))`` becomes ``Slice(Conv_{W+I}(x))``.

A workaround tried by hand in the motivating case. It applies when one operand of the Add
is a Conv (optionally followed by a Slice) whose input is the Add's other operand, with as
many output as input channels, stride 1, and a kernel tap that reads exactly ``x[t]`` for
output ``t`` (checked on the pads, dilations and the Slice's starts). The identity goes into
that tap, the weights are requantized per channel (int8, symmetric) and the bias to the new
weight scales; the conv's output codes take the Add's output quantization (a Relu folded
into that range clips there as it did after the Add), and the Add with the branch's last
Q/DQ pair is removed: the Add's QuantizeLinear reads the Slice's (or the Conv's) output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.model.graph import const_array
from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, add_const, retarget
from qprobe.rewrite.shapes import value_shapes
from qprobe.rewrite.site import Operand, Site


@dataclass(frozen=True)
class Branch:
    operand: Operand  # the Add's operand computed by the conv
    residual: Operand  # the conv's input, the Add's other operand
    conv: ir.Node
    slice: ir.Node | None
    mid: ir.Value | None  # the conv's output codes when a Slice follows
    taps: tuple[int, ...]


def _single_user(value: ir.Value | None, op_type: str) -> ir.Node | None:
    if value is None or value.is_graph_output():
        return None
    users = [u for u, _ in value.uses()]
    return users[0] if len(users) == 1 and users[0].op_type == op_type else None


def _before_q(codes: ir.Value) -> ir.Node | None:
    """The node whose float output the QuantizeLinear producing ``codes`` reads, if that is its only use."""
    q = codes.producer()
    if q is None or q.op_type != "QuantizeLinear" or _single_user(q.inputs[0], "QuantizeLinear") is None:
        return None
    return q.inputs[0].producer() if q.inputs[0] is not None else None


def _conv_of(operand: Operand) -> tuple[ir.Node, ir.Node | None, ir.Value | None] | None:
    node = _before_q(operand.codes)
    if node is None or _single_user(operand.codes, "DequantizeLinear") is None:
        return None
    if _single_user(operand.dq.outputs[0], "Add") is None:
        return None
    if node.op_type == "Conv":
        return node, None, None
    if node.op_type != "Slice" or node.inputs[0] is None:
        return None
    dq = node.inputs[0].producer()
    if dq is None or dq.op_type != "DequantizeLinear" or _single_user(dq.outputs[0], "Slice") is None:
        return None
    mid = dq.inputs[0]
    conv = _before_q(mid) if mid is not None and _single_user(mid, "DequantizeLinear") else None
    return (conv, node, mid) if conv is not None and conv.op_type == "Conv" else None


def _ints(node: ir.Node, name: str, default: list[int]) -> list[int]:
    a = node.attributes.get(name)
    return list(a.as_ints()) if a is not None else default


def _taps(conv: ir.Node, sl: ir.Node | None, w: np.ndarray, rank: int) -> tuple[int, ...] | str:
    spatial = w.ndim - 2
    pads = _ints(conv, "pads", [0] * 2 * spatial)
    dil, strides = _ints(conv, "dilations", [1] * spatial), _ints(conv, "strides", [1] * spatial)
    group, auto_pad = conv.attributes.get("group"), conv.attributes.get("auto_pad")
    if any(s != 1 for s in strides) or (group is not None and group.as_int() != 1):
        return "the conv has strides or groups"
    if auto_pad is not None and auto_pad.as_string() not in ("", "NOTSET"):
        return "the conv uses auto_pad"
    starts = [0] * spatial
    if sl is not None:
        consts = [const_array(v) for v in sl.inputs[1:]]
        if any(c is None for c in consts) or len(consts) < 3:
            return "the Slice's starts, ends and axes are not constants"
        st, _en, ax = (np.asarray(c).reshape(-1) for c in consts[:3])
        steps = np.asarray(consts[3]).reshape(-1) if len(consts) > 3 and consts[3] is not None else np.ones_like(st)
        if np.any(steps != 1) or np.any(st < 0):
            return "the Slice has steps or negative starts"
        for s, a in zip(st, ax, strict=True):
            axis = int(a) % rank
            if axis >= 2:
                starts[axis - 2] = int(s)
    taps = []
    for i in range(spatial):
        offset = pads[i] - starts[i]
        if offset % dil[i] or not 0 <= offset // dil[i] < w.shape[2 + i]:
            return f"no kernel tap reads x[t] for output t on spatial axis {i} (pad {pads[i]}, start {starts[i]})"
        taps.append(offset // dil[i])
    return tuple(taps)


def _weights(conv: ir.Node) -> tuple[ir.Node, np.ndarray, np.ndarray] | None:
    """(weight DequantizeLinear, int8 codes, per-output-channel scales) of a QDQ conv."""
    w = conv.inputs[1]
    dq = w.producer() if w is not None else None
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    codes, scale = const_array(dq.inputs[0]), const_array(dq.inputs[1])
    zp = const_array(dq.inputs[2]) if len(dq.inputs) > 2 else None
    if codes is None or scale is None or codes.dtype != np.int8 or (zp is not None and np.any(zp != 0)):
        return None
    return dq, codes, np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (codes.shape[0],))


def find_branch(model: ir.Model, site: Site) -> Branch | str:
    if site.node.op_type != "Add" or len(site.operands) != 2 or len(site.node.inputs) != 2:
        return f"{site.name} is not a two-operand Add"
    shapes = value_shapes(model)
    for operand, residual in (site.operands, site.operands[::-1]):
        found = _conv_of(operand)
        if found is None:
            continue
        conv, sl, mid = found
        x = conv.inputs[0].producer() if conv.inputs[0] is not None else None
        if x is None or x.op_type != "DequantizeLinear" or x.inputs[0] is not residual.codes:
            continue
        weights = _weights(conv)
        if weights is None:
            return f"{conv.name}'s weights are not int8 symmetric DequantizeLinear constants"
        w = weights[1]
        if w.shape[0] != w.shape[1]:
            return f"{conv.name} maps {w.shape[1]} channels to {w.shape[0]}; folding x needs as many out as in"
        out = operand.dq.outputs[0].name or ""
        if shapes.get(out) != shapes.get(residual.dq.outputs[0].name or "") or out not in shapes:
            return f"the branch output of {site.name} and its residual have different or unknown shapes"
        taps = _taps(conv, sl, w, len(shapes[out]))
        if isinstance(taps, str):
            return f"{conv.name}: {taps}"
        return Branch(operand, residual, conv, sl, mid, taps)
    return f"no operand of {site.name} is a Conv (with an optional Slice) of its other operand, used only there"


class FoldResidual(RewritePass):
    name = "fold-residual"
    summary = "fold the residual into the conv as (W + I)x when the residual branch is the conv's input"
    motivating = True

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        found = find_branch(ctx.model, site)
        return found if isinstance(found, str) else None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit:
        br = find_branch(model, site)
        assert not isinstance(br, str)
        changed = _fold_weights(model, names, br)
        if br.mid is not None:
            changed += retarget(model, names, [br.mid], site.out_quant)
        q_branch = br.operand.codes.producer()
        assert q_branch is not None and q_branch.inputs[0] is not None
        site.node.outputs[0].replace_all_uses_with(q_branch.inputs[0])
        model.graph.remove(site.node, safe=True)
        first = site.chain[0] if site.chain else site.q
        return Edit(
            f"{site.name} folded into {br.conv.name}: identity added at tap {list(br.taps)}, weights and bias "
            f"requantized; {br.conv.name}'s output codes take {site.name}'s output quantization and "
            f"{first.name} reads {q_branch.inputs[0].name}", [*changed, first.name or ""],
        )


def _fold_weights(model: ir.Model, names: Namer, br: Branch) -> list[str]:
    found = _weights(br.conv)
    assert found is not None
    dq, codes, scale = found
    spatial = codes.ndim - 2
    w = codes.astype(np.float64) * scale.reshape((-1,) + (1,) * (codes.ndim - 1))
    for c in range(codes.shape[0]):
        w[(c, c, *br.taps)] += 1.0
    top = np.abs(w).reshape(codes.shape[0], -1).max(axis=1)
    new_scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    new_codes = np.clip(np.rint(w / new_scale.reshape((-1,) + (1,) * (spatial + 1))), -127, 127).astype(np.int8)
    base = br.conv.name or "conv"
    dq.replace_input_with(0, add_const(model, names, f"{base}.weight_folded_quantized", new_codes))
    dq.replace_input_with(1, add_const(model, names, f"{base}.weight_folded_scale", new_scale))
    if len(dq.inputs) > 2:
        dq.replace_input_with(2, add_const(model, names, f"{base}.weight_folded_zero_point",
                                           np.zeros_like(new_scale, np.int8)))
    dq.attributes["axis"] = ir.AttrInt64("axis", 0)
    changed = [dq.name or ""]
    bias = br.conv.inputs[2] if len(br.conv.inputs) > 2 else None
    bdq = bias.producer() if bias is not None else None
    if bdq is not None and bdq.op_type == "DequantizeLinear":
        b_codes, b_scale = const_array(bdq.inputs[0]), const_array(bdq.inputs[1])
        assert b_codes is not None and b_scale is not None
        real = b_codes.astype(np.float64) * np.asarray(b_scale, np.float64)
        s_new = (np.float32(br.residual.quant.scale[0]) * new_scale).astype(np.float32)
        bdq.replace_input_with(0, add_const(model, names, f"{base}.bias_folded_quantized",
                                            np.rint(real / s_new).astype(np.int32)))
        bdq.replace_input_with(1, add_const(model, names, f"{base}.bias_folded_scale", s_new))
        if len(bdq.inputs) > 2:
            bdq.replace_input_with(2, add_const(model, names, f"{base}.bias_folded_zero_point",
                                                np.zeros_like(s_new, np.int32)))
        bdq.attributes["axis"] = ir.AttrInt64("axis", 0)
        changed.append(bdq.name or "")
    return changed
