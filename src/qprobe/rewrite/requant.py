"""Requantizing a tensor into a narrower range: the zero point that clips least, and what it clips.

``fit_zero_point(values, scale, dtype)`` picks, for a fixed scale, the zero point whose
range clips the fewest of ``values`` (then the least total overshoot) and reports the
clipped share and the largest overshoot in LSB of the new scale. Without data the range
is centred on the original one. ``insert_requantize`` puts ``DQ -> Q -> DQ`` in front of
one operand of an op, so that the op reads it at the new parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.rewrite.base import RewriteContext
from qprobe.rewrite.edit import Namer, make_dq, make_q, range_of, with_scale
from qprobe.rewrite.site import Operand, Site
from qprobe.tensors import INT_RANGES, QuantParams


@dataclass(frozen=True)
class Fit:
    quant: QuantParams
    clipped_share: float | None  # None: no data to measure on
    clipped_max_lsb: float | None
    samples: int

    def measures(self, prefix: str) -> dict[str, float]:
        if self.clipped_share is None or self.clipped_max_lsb is None:
            return {}
        return {f"{prefix}_clipped_share": self.clipped_share, f"{prefix}_clipped_max_lsb": self.clipped_max_lsb}

    def text(self, what: str) -> str:
        if self.clipped_share is None:
            return f"{what}: clipping not measured (no data)"
        return (f"{what} clips {100 * self.clipped_share:.3f}% of {self.samples} values "
                f"(at most {self.clipped_max_lsb:.1f} LSB)")


def fit_zero_point(values: np.ndarray | None, scale: float, like: QuantParams) -> Fit:
    qmin, qmax = INT_RANGES[like.dtype]
    if values is None or values.size == 0:
        lo, hi = range_of(like)
        centre = 0.5 * (lo + hi)
        zp = int(round(0.5 * (qmin + qmax) - centre / scale))
        return Fit(with_scale(like, scale, zp), None, None, 0)
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    zps = np.arange(qmin, qmax + 1)
    lows, highs = (qmin - zps) * scale, (qmax - zps) * scale
    below = np.searchsorted(v, lows - 0.5 * scale, side="left")
    above = v.size - np.searchsorted(v, highs + 0.5 * scale, side="right")
    clipped = below + above
    best = np.flatnonzero(clipped == clipped.min())
    over = [_overshoot(v, lows[i], highs[i]) for i in best]
    i = int(best[int(np.argmin(over))])
    return Fit(with_scale(like, scale, int(zps[i])), float(clipped[i] / v.size),
               float(over[int(np.argmin(over))] / scale),
               int(v.size))


def _overshoot(v: np.ndarray, lo: float, hi: float) -> float:
    return float(max(lo - v[0], v[-1] - hi, 0.0))


def operand_values(ctx: RewriteContext, operand: Operand) -> np.ndarray | None:
    """The real values the operand takes on the data (its DequantizeLinear output), if known."""
    name = operand.dq.outputs[0].name
    if ctx.values is None or not name:
        return None
    return np.asarray(ctx.values([name])[name])


def insert_requantize(model: ir.Model, names: Namer, site: Site, operand: Operand, q: QuantParams) -> list[str]:
    """``op(..., DQ(Q(DQ(codes), q)), ...)``: the op reads this operand at ``q``; returns the new nodes."""
    base = f"{site.name}_in{operand.index}_requant"
    src = operand.dq.outputs[0]
    qn = make_q(model, names, src, q, base)
    dqn = make_dq(model, names, qn.outputs[0], q, base)
    model.graph.insert_before(site.node, [qn, dqn])
    site.node.replace_input_with(operand.index, dqn.outputs[0])
    return [qn.name or "", dqn.name or ""]


def outside(ctx: RewriteContext, site: Site) -> list[int]:
    """Positions (in ``site.operands``) of the operands whose ratio is outside the envelope."""
    return [k for k, r in enumerate(site.ratios) if not ctx.envelope.contains(r)]


def ratios_text(ratios: tuple[float, ...] | list[float]) -> str:
    return ", ".join(f"{r:.3f}" for r in ratios)


ELTWISE_OPS = ("Add", "Sub")


def eltwise_refusal(ctx: RewriteContext, site: Site, ops: tuple[str, ...] = ELTWISE_OPS) -> str | None:
    """Why a ratio pass does not apply: another op type, two operands missing, or nothing outside."""
    op = site.node.op_type
    if op not in ops:
        return f"{site.name} is a {op}; this pass rewrites {'/'.join(ops)} ops"
    if len(site.operands) != 2:
        return f"{site.name} has {len(site.operands)} quantized operands; this pass needs two"
    if not outside(ctx, site):
        return (f"every operand ratio of {site.name} ({ratios_text(site.ratios)}) is already inside the envelope "
                f"({ctx.envelope.limit_text()})")
    if ctx.envelope.home() is None:
        return f"the envelope has no safe range around ratio 1.0 ({ctx.envelope.statement}); no ratio to aim for"
    return None
