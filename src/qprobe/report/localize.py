"""Terminal renderers of a localization (rich): the per-tensor table and the summary lines.

They format a ``Divergence``; the only lookup is the culprit's scale ratios in the model's
quantization view.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from qprobe.compare import TensorComparison
from qprobe.localize import Divergence
from qprobe.model.quant import QuantIndex
from qprobe.report.terminal import add_column, compact_table

_STYLE = {"exact": "green", "pass": "cyan", "fail": "bold red"}
_ROLE_STYLE = {"culprit": "bold red", "introduces": "red", "carrier": "yellow", "unconfirmed": "bold yellow"}


def _cells(r: TensorComparison | None) -> list[Text | str]:
    if r is None:
        return ["", "", ""]
    lsb = r.lsb
    bias = "-" if lsb is None else f"{lsb.mean_delta_lsb:+.2f}"
    return [f"{r.st.cos:.4f}" if r.st.cos == r.st.cos else "-", bias, Text(r.verdict, style=_STYLE.get(r.verdict, ""))]


def divergence_table(div: Divergence) -> Table:
    t = compact_table(f"{div.ref} (reference) vs {div.target} (target), {div.num_samples} samples: "
                      "accumulated (whole model) and isolated (op alone, reference inputs; Δ: mean Δ)")
    for col in ("tensor", "op", "acc\ncos", "acc Δ\nLSB", "acc", "iso\ncos", "iso Δ\nLSB", "iso", "role"):
        add_column(t, col)
    roles = {f.op: f.role for f in ([div.culprit] if div.culprit else []) + list(div.later)}
    acc = {r.name: r for r in div.tensors}
    iso = {r.name: r for r in div.isolated}
    for name in dict.fromkeys([*acc, *iso]):
        r = acc.get(name) or iso[name]
        role = roles.get(r.producer, "")
        t.add_row(name, f"{r.producer} ({r.op_type})", *_cells(acc.get(name)), *_cells(iso.get(name)),
                  Text(role, style=_ROLE_STYLE.get(role, "")))
    return t


def summary(div: Divergence, index: QuantIndex) -> list[str]:
    lines = [("DIVERGENCE: " if div.found else "") + div.verdict()]
    c = div.culprit
    if c is not None:
        for r in div.culprit_inputs:
            lines.append(f"  input {r.name}: cos {r.st.cos:.5f}, {r.verdict} ({r.reason}) on the target")
        ratios = index.scale_ratios(index.op(c.op)) if c.op in {o.name for o in index.ops} else None
        if ratios:
            lines.append("  operand-to-output scale ratios: " + ", ".join(f"{x:.3f}" for x in ratios))
    carriers, introducers = div.carriers(), div.introducers()
    if carriers:
        lines.append(f"carriers (fine in isolation, error from upstream): {len(carriers)}: {', '.join(carriers)}")
    if introducers:
        lines.append(f"also introduce their own error: {', '.join(introducers)}")
    unclassified = [f.op for f in div.later if f.role not in ("carrier", "introduces")]
    if unclassified:
        lines.append(f"not classified: {', '.join(unclassified)}")
    budget = "" if div.budget is None else f" (bisect budget ceil(log2 N) + 2 = {div.budget})"
    cache = f" ({div.runs_executed} ran, {div.runs_cached} from the cache)" if div.runs_cached else ""
    lines.append(f"target runs used: {div.target_runs}{cache}{budget}; reference runs: {div.reference_runs}")
    return lines
