"""Ranking candidates, and what fix says about the workarounds tried by hand on the board.

Order: verdict (verified before predicted before failures), then int8 fixes before ones that
leave the int8 accelerator (float fallback, int16), then final-output error against the
reference (rmse in LSB of the original output, to 0.1 LSB), then accuracy against the ground
truth (when given, to 4 significant digits), then cost (``Cost.key``).
"""

from __future__ import annotations

import math

import onnx_ir as ir

from qprobe.fix.result import FAILING, VERDICTS, BoardNote, Candidate
from qprobe.model.quant import build_quant_index
from qprobe.rewrite import RatioEnvelope

CLASS_OF = {"Add": "eltwise", "Sub": "eltwise", "Concat": "concat", "QLinearAdd": "eltwise", "QLinearConcat": "concat"}

# why each workaround of the motivating case can or cannot change a ratio-limited unit's result
HINTS = {
    "concat-conv": "the Concat requantizes its operands through the same unit as the Add",
    "int16-neighbours": "int16 codes shrink every scale by the same factor: ratios are unchanged",
    "shared-scale": "a scale shared by the operands is at least the larger operand's: no ratio gets smaller",
    "fold-residual": "the Add disappears into the conv's weights; only the conv's requantization remains",
}


def rank_key(c: Candidate) -> tuple[int, bool, float, float, tuple[int, ...]]:
    s = c.decisive()
    err = math.inf
    if s is not None:
        err = round(s.rmse_lsb, 1) if s.rmse_lsb is not None else s.final_rmse
        err = err if math.isfinite(err) else math.inf
    truth = float(f"{s.truth_rmse:.4g}") if s is not None and s.truth_rmse is not None else math.inf
    return VERDICTS.index(c.verdict), not c.int8, err, truth, c.cost.key()


def ranked(cands: list[Candidate]) -> list[Candidate]:
    return sorted(cands, key=rank_key)


def _ratios(model: ir.Model, envelopes: dict[str, RatioEnvelope],
            only: set[str] | None = None) -> list[tuple[str, str, float, RatioEnvelope]]:
    """(op type, name, largest operand ratio, envelope) of the Add/Sub/Concat ops (of ``only``) with an envelope."""
    index = build_quant_index(model)
    found = []
    for op in index.ops:
        if only is not None and op.name not in only:
            continue
        env = envelopes.get(CLASS_OF.get(op.op_type, ""))
        ratios = index.scale_ratios(op) if env is not None else None
        if ratios and env is not None:
            bad = [r for r in ratios if not env.contains(r)]
            found.append((op.op_type, op.name, max(bad or ratios), env))
    return found


def outside_ops(model: ir.Model, envelopes: dict[str, RatioEnvelope], only: set[str] | None = None) -> list[str]:
    """The Add/Sub/Concat ops of ``model`` (of ``only``) with an operand ratio outside their envelope, as text."""
    return [f"{t} {n} has operand ratio {r:.3f}, outside the envelope ({env.limit_text()})"
            for t, n, r, env in _ratios(model, envelopes, only) if not env.contains(r)]


def board_note(c: Candidate, envelopes: dict[str, RatioEnvelope], culprit: str) -> BoardNote | None:
    """Does a workaround tried on the board fail here as it did there, and why (judged on the culprit and
    the ops the rewrite added)."""
    if not c.motivating:
        return None
    hint = HINTS.get(c.pass_name, "")
    if c.rewrite is None or not c.rewrite.applied:
        return BoardNote(False, f"not applicable here: {c.verdict_reason}")
    mine = {culprit, *c.rewrite.added_nodes}
    bad = outside_ops(c.rewrite.model, envelopes, mine)
    if c.verdict in FAILING:
        why = "; ".join(bad) if bad else f"not through a ratio: {c.verdict_reason}"
        return BoardNote(True, f"{hint}: {why}" if hint else why)
    inside = _ratios(c.rewrite.model, envelopes, mine)
    top = max(inside, key=lambda x: x[2]) if inside else None
    where = (f"the largest Add/Concat operand ratio is {top[2]:.3f} ({top[0]} {top[1]})" if top
             else "no Add/Concat is left")
    return BoardNote(False, f"unlike on the board, {c.verdict} to work here: {hint}, and {where}, inside the envelope; "
                            "the fitted profile does not reproduce this workaround's failure on the board")
