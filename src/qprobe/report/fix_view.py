"""The fix view, from a ``qprobe.fix/1`` document: every candidate's row, the best fix, the
workarounds the motivating case tried by hand (with whether each fails as it did there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qprobe.report.cells import finite

STAGES = ("target", "emulation", "reference")


def cost_text(cost: Mapping[str, Any] | None) -> str:
    """A candidate's cost as one phrase: ops, MACs and parameter bytes added, ops moved off the accelerator."""
    if not cost:
        return "-"
    parts = [f"{int(cost.get('ops_added', 0)):+d} ops", f"{int(cost.get('macs_added', 0)):+,d} MACs",
             f"{int(cost.get('param_bytes_added', 0)):+,d} B"]
    if cost.get("ops_off_accelerator"):
        parts.append(f"{int(cost['ops_off_accelerator'])} op(s) off the accelerator")
    return ", ".join(parts)


def _decisive(c: Mapping[str, Any]) -> Mapping[str, Any] | None:
    by_stage = c.get("measures_by_stage") or {}
    return next((by_stage[s] for s in STAGES if s in by_stage), None)


def _row(rank: int, c: Mapping[str, Any]) -> dict[str, Any]:
    s = _decisive(c) or {}
    applied = c.get("applied", True)
    return {
        "rank": rank, "pass": c["pass"], "summary": c.get("summary", ""), "verdict": c.get("verdict", ""),
        "reason": c.get("verdict_reason") or c.get("reason", ""), "stage": s.get("stage", "-"),
        "backend": s.get("backend", ""), "final_cos": finite(s.get("final_cos")), "rmse_lsb": finite(s.get("rmse_lsb")),
        "max_abs_lsb": finite(s.get("max_abs_lsb")), "truth_rmse": finite(s.get("truth_rmse")),
        "cost": cost_text(c.get("cost")) if applied else "-", "int8": bool(c.get("int8", True)),
        "motivating": bool(c.get("motivating")), "applied": bool(applied),
        "changed_nodes": list(c.get("changed_nodes") or ()),
    }


def build_fix_view(fix: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    cands = list(fix.get("candidates") or ())
    rows = [_row(i, c) for i, c in enumerate(cands, 1)]
    workarounds = []
    for c, r in zip(cands, rows, strict=True):
        board = c.get("board")
        if c.get("motivating") or board:
            workarounds.append({**r, "fails_as_on_board": None if not board else bool(board["fails_as_on_board"]),
                                "why": "" if not board else board.get("why", "")})
    best = fix.get("best")
    original = [{"stage": s.get("stage"), "backend": s.get("backend"), "final_cos": finite(s.get("final_cos")),
                 "reason": s.get("reason", "")} for s in fix.get("original") or ()]
    return {
        "node": fix.get("node"), "op_type": fix.get("op_type"), "ratios": [finite(r) for r in fix.get("ratios") or ()],
        "emulation": fix.get("emulation"), "passed": bool(fix.get("passed")),
        "best": None if best is None else {**best, "cost_text": cost_text(best.get("cost")),
                                           "final_cos": finite(best.get("final_cos"))},
        "rows": rows, "workarounds": workarounds, "original": original,
        "envelopes": [{"op_class": k, "statement": v.get("statement", ""), "source": v.get("source", "")}
                      for k, v in (fix.get("envelopes") or {}).items()],
        "target_runs": fix.get("target_runs") or {}, "notes": list(fix.get("notes") or ()),
    }
