"""Terminal rendering of a ``FixResult`` (rich): the candidate table and the verdict lines.

It formats; it computes nothing. ``fix_renderables`` returns what the CLI prints, in order.
"""

from __future__ import annotations

import math

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from qprobe.fix import Candidate, FixResult

_STYLE = {"verified": "bold green", "predicted": "green", "fails-target": "bold red", "fails-emulation": "red",
          "rejected-reference": "yellow", "not-applicable": "dim"}


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, fmt)


def candidate_table(result: FixResult) -> Table:
    t = Table(title=f"fix {result.node} ({result.op_type}, ratios "
              f"{', '.join(f'{r:.3f}' for r in result.ratios)}): candidates, best first", title_justify="left")
    for col in ("#", "pass", "verdict", "stage", "final cos", "rmse LSB", "max LSB", "truth rmse", "cost", "reason"):
        t.add_column(col)
    for i, c in enumerate(result.candidates, 1):
        s = c.decisive()
        t.add_row(str(i), c.pass_name, Text(c.verdict, style=_STYLE.get(c.verdict, "")), s.stage if s else "-",
                  _f(s.final_cos if s else None, ".5f"), _f(s.rmse_lsb if s else None, ".2f"),
                  _f(s.max_abs_lsb if s else None, ".0f"), _f(s.truth_rmse if s else None, ".4f"),
                  c.cost.text() if c.rewrite is None or c.rewrite.applied else "-", c.verdict_reason)
    return t


def fix_renderables(result: FixResult) -> list[RenderableType]:
    """What ``qprobe fix`` prints for ``result``, in order."""
    out: list[RenderableType] = []
    out.append(f"culprit: {result.node} ({result.culprit_source}); emulation: {result.emulation}")
    for cls, env in result.envelopes.items():
        out.append(f"envelope ({cls}, {env.get('source', '')}): {env.get('statement', '')}")
    out.append(candidate_table(result))
    motivating = [c for c in result.candidates if c.board is not None]
    if motivating:
        out.append("[bold]the workarounds tried on the board[/]:")
        for c in motivating:
            assert c.board is not None
            label = "fails as on the board" if c.board.fails_as_on_board else "does not fail as on the board"
            out.append(f"  {c.pass_name}: {c.verdict}, {label}: {c.board.why}")
    for note in result.notes:
        out.append(f"note: {note}")
    out.append(_verdict_line(result))
    runs = result.target_runs
    cached = runs.get("cached", 0)
    cache = f"; {runs.get('total', 0) - cached} ran, {cached} from the cache" if cached else ""
    out.append(f"target runs used: {runs.get('total', 0)} (localize {runs.get('localize', 0)}, explain "
               f"{runs.get('explain', 0)}, verification {runs.get('verify', 0)}{cache})")
    return out


def _verdict_line(result: FixResult) -> str:
    b: Candidate | None = result.best
    if b is None:
        return "FIX: none of the candidates brings the final outputs within tolerance"
    s = b.decisive()
    assert s is not None
    return (f"FIX: {b.pass_name} ({b.verdict} on {s.backend}): final cos {s.final_cos:.5f}, rmse {s.final_rmse:.4g}"
            + (f", truth rmse {s.truth_rmse:.4f}" if s.truth_rmse is not None else ""))
