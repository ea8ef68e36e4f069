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


def outside_ops(model: ir.Model, envelopes: dict[str, RatioEnvelope]) -> list[str]:
    """Every Add/Sub/Concat of ``model`` with an operand ratio outside its class's envelope, as text."""
    index = build_quant_index(model)
    found = []
    for op in index.ops:
        env = envelopes.get(CLASS_OF.get(op.op_type, ""))
        ratios = index.scale_ratios(op) if env is not None else None
        bad = [r for r in ratios or [] if env is not None and not env.contains(r)]
        if bad and env is not None:
            found.append(f"{op.op_type} {op.name} has operand ratio {max(bad):.3f}, outside the envelope "
                         f"({env.limit_text()})")
    return found


def board_note(c: Candidate, envelopes: dict[str, RatioEnvelope]) -> BoardNote | None:
    """Does a workaround tried on the board fail here as it did there, and why."""
    if not c.motivating:
        return None
    hint = HINTS.get(c.pass_name, "")
    if c.rewrite is None or not c.rewrite.applied:
        return BoardNote(False, f"not applicable here: {c.verdict_reason}")
    bad = outside_ops(c.rewrite.model, envelopes)
    if c.verdict in FAILING:
        why = "; ".join(bad) if bad else f"not through a ratio: {c.verdict_reason}"
        return BoardNote(True, f"{hint}: {why}" if hint else why)
    return BoardNote(False, f"unlike on the board, {c.verdict} to work here ({hint}; every Add/Concat ratio is inside "
                            "its envelope): the fitted profile does not reproduce this workaround's failure on the "
                            "board, so the board computes something the profile does not model here")
