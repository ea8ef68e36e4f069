"""Model-side workarounds for an op a target computes wrong: one graph pass per file.

``PASSES`` is the registry (a new pass is one file and one line here), in the order fix
tries them: the four workarounds of the motivating case first, then the ones that steer the
op's scale ratios into the target's envelope, then the float fallback. ``apply_pass(name,
ctx)`` runs one; ``get_pass`` names the known ones when asked for an unknown one.
"""

from __future__ import annotations

from qprobe.errors import InputError
from qprobe.rewrite.base import Edit, RewriteContext, RewritePass, RewriteResult, Values
from qprobe.rewrite.concat_conv import ConcatConv
from qprobe.rewrite.cost import Cost
from qprobe.rewrite.envelope import RatioEnvelope
from qprobe.rewrite.fold_residual import FoldResidual
from qprobe.rewrite.int16_neighbours import Int16Neighbours
from qprobe.rewrite.keep_float import KeepFloat
from qprobe.rewrite.move_relu import MoveRelu
from qprobe.rewrite.raise_output_scale import RaiseOutputScale
from qprobe.rewrite.requantize_before import RequantizeBefore
from qprobe.rewrite.requantize_model import RequantizeModel
from qprobe.rewrite.requantize_operand import RequantizeOperand
from qprobe.rewrite.shared_scale import SharedScale
from qprobe.rewrite.site import Site, find_site
from qprobe.rewrite.split_operand import SplitOperand
from qprobe.rewrite.swap_operands import SwapOperands

PASSES: dict[str, RewritePass] = {
    "concat-conv": ConcatConv(),
    "int16-neighbours": Int16Neighbours(),
    "shared-scale": SharedScale(),
    "fold-residual": FoldResidual(),
    "raise-output-scale": RaiseOutputScale(),
    "requantize-operand": RequantizeOperand(),
    "split-operand": SplitOperand(),
    "swap-operands": SwapOperands(),
    "move-relu": MoveRelu(),
    "requantize-before": RequantizeBefore(),
    "requantize-model": RequantizeModel(),
    "keep-float": KeepFloat(),
}


def get_pass(name: str) -> RewritePass:
    if name not in PASSES:
        raise InputError(f"unknown rewrite pass {name!r}; known: {', '.join(PASSES)}")
    return PASSES[name]


def apply_pass(name: str, ctx: RewriteContext) -> RewriteResult:
    return get_pass(name).apply(ctx)


__all__ = [
    "PASSES", "Cost", "Edit", "RatioEnvelope", "RewriteContext", "RewritePass", "RewriteResult", "Site", "Values",
    "apply_pass", "find_site", "get_pass",
]
