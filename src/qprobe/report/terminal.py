"""Terminal renderers (rich). They format results; they compute nothing."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from qprobe.compare.policy import EXACT, FAIL
from qprobe.compare.result import Comparison, ProbeEffect
from qprobe.model.quant import QuantIndex

_VERDICT_STYLE = {EXACT: "green", "pass": "cyan", FAIL: "bold red"}
NAMES = ("tensor", "op")


def compact_table(title: str) -> Table:
    """A table that fits a 100-column terminal: no outer edge, one space between columns."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)


def add_column(t: Table, header: str, justify: str = "left") -> None:
    """Names fold (they wrap whole, never cut short) to fit the width; numbers and verdicts never break."""
    name = header in NAMES
    t.add_column(header, justify=justify, overflow="fold", no_wrap=not name)  # type: ignore[arg-type]


def _num(v: float | None, fmt: str) -> str:
    if v is None or v != v:
        return "-"
    return format(v, fmt)


def _pct(share: float | None) -> str:
    """A share in percent that never shows 100.00 unless every element is identical."""
    if share is None or share != share:
        return "-"
    return "100" if share == 1.0 else f"{min(100 * share, 99.99):.2f}"


def comparison_table(cmp: Comparison) -> Table:
    t = compact_table(f"{cmp.ref} (reference) vs {cmp.target} (target), {cmp.num_samples} samples")
    for col, just in [("#", "right"), ("tensor", "left"), ("op", "left"), ("scale", "right"), ("cos", "right"),
                      ("rmse", "right"), ("mean Δ\nLSB", "right"), ("max |Δ|\nLSB", "right"), ("exact\n%", "right"),
                      ("verdict", "left")]:
        add_column(t, col, justify=just)
    first = cmp.first_failing
    for i, r in enumerate(cmp.rows):
        scale = _num(r.quant.scale[0], ".4g") if r.quant and r.quant.per_tensor else ("per-ch" if r.quant else "-")
        lsb = r.lsb
        verdict = Text(r.verdict, style=_VERDICT_STYLE.get(r.verdict, ""))
        if first is not None and r.name == first.name:
            verdict.append(" ◀ first", style="bold red")
        t.add_row(
            str(i), r.name, f"{r.producer} ({r.op_type})", scale, _num(r.st.cos, ".5f"), _num(r.st.rmse, ".4g"),
            _num(lsb.mean_delta_lsb if lsb else None, "+.3f"), _num(lsb.max_abs_lsb if lsb else None, ".0f"),
            _pct(lsb.exact_share if lsb else None), verdict,
        )
    return t


def comparison_summary(cmp: Comparison) -> list[str]:
    lines = [f"note: {n}" for n in cmp.notes]
    lines += [_effect_line(e, len(cmp.plan.added_outputs)) for e in cmp.probe_effects]
    if cmp.deployed and not cmp.trusted:
        lines.append("the verdict is about the deployed (unprobed) model: its final outputs")
        for r in cmp.deployed:
            lines.append(f"  deployed {r.name}: cos {_num(r.st.cos, '.5f')}, {r.verdict} ({r.reason})")
    first = cmp.first_failing
    rows = cmp.verdict_rows
    if first is None:
        n_exact = sum(r.verdict == EXACT for r in rows)
        what = "deployed outputs" if rows is cmp.deployed else "tensors"
        lines.append(f"PASS: all {len(rows)} {what} within tolerance ({n_exact} exact, "
                     f"{len(rows) - n_exact} within tolerance but not identical)")
    else:
        n_fail = sum(r.failed for r in rows)
        what = "deployed outputs" if rows is cmp.deployed else "tensors"
        lines.append(f"FAIL: {n_fail} of {len(rows)} {what} fail; first failing: {first.name} "
                     f"({first.producer}, {first.op_type}): {first.reason}")
    lines.append("mean Δ is reference − target (ST's sign): > 0 means the target is biased low")
    return lines


def _effect_line(e: ProbeEffect, probed: int) -> str:
    if not e.checked:
        return f"probe effect on {e.backend}: {e.detail}"
    if not e.changed:
        return f"probe effect on {e.backend}: none (final outputs identical with and without probes)"
    parts = []
    for o in e.outputs:
        if o.identical:
            continue
        lsb = "" if o.max_abs_lsb is None else (f", max |Δ| {_num(o.max_abs_lsb, '.0f')} LSB, exact "
                                                f"{_pct(o.exact_share)}%")
        parts.append(f"{o.name} (cos {_num(o.cos, '.5f')}{lsb})")
    return (f"probe effect on {e.backend}: probing CHANGED its final outputs {'; '.join(parts)}: its {probed} probed "
            "tensors are not what the deployed model computes and are not trusted")


def quant_index_table(index: QuantIndex) -> Table:
    t = Table(title="ops in topological order", title_justify="left")
    for col in ("#", "op", "type", "quantized inputs (scale, zp)", "quantized outputs (scale, zp)",
                "operand/output scale ratios"):
        t.add_column(col, overflow="fold")
    for i, op in enumerate(index.ops):
        ins = "\n".join(_qdesc(index, q) for q in op.q_inputs) or "-"
        outs = "\n".join(_qdesc(index, q) for q in op.q_outputs) or "-"
        ratios, mult = index.scale_ratios(op), index.multiplier(op)
        rtxt = Text(", ".join(f"{r:.3f}" for r in ratios) if ratios else "")
        if ratios and max(ratios) >= 2.0:
            rtxt.stylize("bold yellow")
        if mult is not None:
            rtxt = Text(f"multiplier sa·sb/so = {mult:.4g}")
        t.add_row(str(i), op.name, op.op_type, ins, outs, rtxt)
    return t


def _qdesc(index: QuantIndex, name: str | None) -> str:
    if name is None:
        return "float"
    q = index.tensors.get(name)
    if q is None:
        return name
    if q.per_tensor:
        return f"{name} ({q.scale[0]:.6g}, {q.zero_point[0]}, {q.dtype})"
    return f"{name} (per-axis {q.axis}, {len(q.scale)} scales, {q.dtype})"
