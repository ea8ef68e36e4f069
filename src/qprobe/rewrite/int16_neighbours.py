"""int16 activations on the op and its neighbours (a workaround tried by hand in the motivating case).

The op's operand codes and output codes (with the codes data movement copies from them at
the same parameters) become int16 over the same real ranges: ``scale * 255 / 65535``, the
zero point moved to keep the range's bottom. Every scale shrinks by the same factor, so each
operand-to-output ratio is unchanged: finer codes cannot bring a ratio into an envelope. The
model moves to opset 21 (int16 QuantizeLinear), converted by ``onnx.version_converter``. On an
int8-only accelerator every op touching those tensors leaves it.
"""

from __future__ import annotations

import onnx_ir as ir
from onnx import version_converter

from qprobe.model.loader import model_from_proto, to_proto
from qprobe.rewrite.base import Edit, RewriteContext, RewritePass
from qprobe.rewrite.edit import Namer, code_family, params_for_range, range_of, retarget
from qprobe.rewrite.site import Site, find_site
from qprobe.tensors import QuantParams

INT16_OPSET, INT16_IR = 21, 10


def widened(q: QuantParams) -> QuantParams:
    lo, hi = range_of(q)
    return params_for_range(lo, hi, "int16" if q.dtype == "int8" else "uint16")


class Int16Neighbours(RewritePass):
    name = "int16-neighbours"
    summary = "int16 activations on the op's operands and output (and the ops that produce or read them)"
    motivating = True
    int8 = False

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        wide = [o.codes.name for o in site.operands if o.quant.dtype not in ("int8", "uint8")]
        if wide:
            return f"operand codes {wide} of {site.name} are not 8-bit already"
        return None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit | str:
        proto = to_proto(model)
        if model.opset_imports.get("", 1) < INT16_OPSET:
            try:
                proto = version_converter.convert_version(proto, INT16_OPSET)
            except Exception as e:  # the converter raises several types
                return f"cannot move the model to opset {INT16_OPSET} for int16 QuantizeLinear: {e}"
        proto.ir_version = max(proto.ir_version, INT16_IR)
        model = model_from_proto(proto)
        mine = find_site(model, site.name)
        assert not isinstance(mine, str)
        names = Namer(model)
        groups = [(o.codes, o.quant) for o in mine.operands] + [(mine.out_codes, mine.out_quant)]
        changed, touched = [mine.name], set()
        for codes, q in groups:
            family = code_family(codes)
            changed += retarget(model, names, family, widened(q))
            touched |= _compute_neighbours(family)
        return Edit(
            f"{len(groups)} quantized tensors of {site.name} (and their data-movement copies) become int16 over the "
            f"same ranges; every ratio is unchanged (model moved to opset {INT16_OPSET})",
            changed, off_accelerator=len(touched), model=model,
        )


def _compute_neighbours(family: list[ir.Value]) -> set[str]:
    """Compute ops that produce or read codes of ``family`` (through their Q/DQ nodes)."""
    out: set[str] = set()
    for c in family:
        q = c.producer()
        if q is not None and q.inputs[0] is not None and q.inputs[0].producer() is not None:
            out.add(q.inputs[0].producer().name or "")  # type: ignore[union-attr]
        for dq, _ in c.uses():
            out |= {u.name or "" for u, _ in dq.outputs[0].uses() if u.op_type not in ("QuantizeLinear",)}
    return out
