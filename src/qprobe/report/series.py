"""The error series: every compared tensor along the topological order, accumulated next to local.

*Accumulated* is the tensor's error in the whole model on the target (the comparison run, or
localize's runs when there is no comparison). *Local* is the op's error alone, fed the
reference's inputs: measured where localize isolated the op, and *inferred* equal to the
accumulated error where every input of the op is identical on the target (the isolated run
then sees exactly what the whole model saw). Each point carries its role from localize
(culprit, carrier, introduces, ...). The chart geometry (axis ranges, ticks, every point's
position in [0, 1]) is computed here so the HTML template only scales it to pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qprobe.report.cells import by_name, finite, fmt, metrics, norm, pct, scale_of, ticks

MEASURED, INFERRED = "measured", "inferred"


def culprit_ops(divergence: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The culprit's ops: one op, or the members of a fused group localize blames as one unit."""
    c = (divergence or {}).get("culprit")
    return () if not c else tuple(c.get("group") or (c["op"],))


def roles_of(divergence: Mapping[str, Any] | None) -> dict[str, str]:
    if not divergence:
        return {}
    roles = {f["op"]: f["role"] for f in divergence.get("later", ())}
    c = divergence.get("culprit")
    return roles | ({op: c["role"] for op in culprit_ops(divergence)} if c else {})


def _accumulated(comparison: Mapping[str, Any] | None, divergence: Mapping[str, Any] | None) -> tuple[list[Any], str]:
    if comparison is not None:
        return list(comparison["rows"]), f"the comparison run ({comparison['plan']['mode']} probed)"
    if divergence is not None:
        return list(divergence["tensors"]), "localize's runs of the whole model"
    return [], ""


def _local(row: Mapping[str, Any], isolated: Mapping[str, Any], acc: Mapping[str, Any],
           op_inputs: Mapping[str, Sequence[str]], graph_inputs: set[str]) -> tuple[dict[str, Any] | None, str | None]:
    name = row["name"]
    if name in isolated:
        return metrics(isolated[name]), MEASURED
    ins = op_inputs.get(name)
    if ins is None or not row.get("lsb"):
        return None, None
    if all(t in graph_inputs or (t in acc and acc[t]["verdict"] == "exact") for t in ins):
        return metrics(row), INFERRED
    return None, None


def build_series(
    comparison: Mapping[str, Any] | None, divergence: Mapping[str, Any] | None,
    op_inputs: Mapping[str, Sequence[str]], graph_inputs: Sequence[str], policy: Mapping[str, Any],
) -> dict[str, Any]:
    """The series view (see the module docstring); ``op_inputs``: observed tensor -> its op's inputs."""
    rows, source = _accumulated(comparison, divergence)
    acc = by_name(rows)
    isolated = by_name((divergence or {}).get("isolated"))
    roles = roles_of(divergence)
    culprits = set(culprit_ops(divergence))
    n = max(len(rows), 1)
    points = []
    for i, r in enumerate(rows):
        local, basis = _local(r, isolated, acc, op_inputs, set(graph_inputs))
        scale, zp = scale_of(r)
        points.append({
            "i": i, "u": (i + 0.5) / n, "tensor": r["name"], "op": r["producer"], "op_type": r["op_type"],
            "role": roles.get(r["producer"], ""), "culprit": r["producer"] in culprits,
            "scale": scale, "zero_point": zp, "acc": metrics(r), "local": local, "local_basis": basis,
        })
    first = (comparison or {}).get("first_failing")
    return {
        "source": source, "n": len(points), "points": points, "label_every": max(1, -(-len(points) // 40)),
        "panels": [_panel(points, k, policy) for k in ("cos", "mean_delta_lsb", "exact_pct")],
        "culprit": _mark(points, lambda p: p["culprit"], "culprit"),
        "first_failing": _mark(points, lambda p: p["tensor"] == first, "first failing"),
        "measured_local": sum(p["local_basis"] == MEASURED for p in points),
        "inferred_local": sum(p["local_basis"] == INFERRED for p in points),
        "trusted": bool((comparison or {}).get("trusted", True)),
    }


def _mark(points: list[dict[str, Any]], pred: Any, label: str) -> dict[str, Any] | None:
    """Where the chart marks ``pred``'s points: their first point, and the span of all of them (a group)."""
    hits = [p for p in points if pred(p)]
    if not hits:
        return None
    ops = ", ".join(dict.fromkeys(p["op"] for p in hits))
    half = 0.5 / max(len(points), 1)
    return {"u": (hits[0]["u"] + hits[-1]["u"]) / 2, "u0": hits[0]["u"] - half, "u1": hits[-1]["u"] + half,
            "i": hits[0]["i"], "label": f"{label}: {ops}", "tensor": hits[0]["tensor"]}


_TITLES = {
    "cos": ("cosine similarity", "cos", ".4f"),
    "mean_delta_lsb": ("mean Δ (reference − target)", "LSB", "+.2f"),
    "exact_pct": ("identical codes", "%", ".1f"),
}


def _range(key: str, values: list[float], policy: Mapping[str, Any]) -> tuple[float, float, list[dict[str, Any]]]:
    tol = (policy or {}).get("default") or {}
    if key == "cos":
        lo = min([0.0, *values])
        lo = -1.0 if lo < 0 else 0.0
        min_cos = finite(tol.get("min_cos")) or 0.99
        return lo, 1.0, [{"value": min_cos, "label": f"pass ≥ {min_cos:g}", "v": norm(min_cos, lo, 1.0)}]
    if key == "mean_delta_lsb":
        bias = finite(tol.get("max_abs_bias_lsb")) or 0.5
        top = max([1.0, *(abs(v) for v in values)])
        m = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**4, 10**5, 10**6, float("inf")) if s >= top)
        if m == float("inf"):
            m = top
        return -m, m, [{"value": b, "label": f"±{bias:g} LSB", "v": norm(b, -m, m)} for b in (-bias, bias)]
    return 0.0, 100.0, []


def _panel(points: list[dict[str, Any]], key: str, policy: Mapping[str, Any]) -> dict[str, Any]:
    title, unit, spec = _TITLES[key]
    values = [v for p in points for side in ("acc", "local") if p[side] and (v := p[side][key]) is not None]
    lo, hi, lines = _range(key, values, policy)
    series: dict[str, list[dict[str, Any]]] = {"acc": [], "local": []}
    for p in points:
        for side in ("acc", "local"):
            m = p[side]
            v = None if m is None else m[key]
            if v is None:
                continue
            shown = pct(v) + " %" if key == "exact_pct" else f"{fmt(v, spec)} {unit if unit != 'cos' else ''}".strip()
            what = "accumulated" if side == "acc" else f"local ({p['local_basis']})"
            series[side].append({
                "u": p["u"], "v": norm(v, lo, hi), "verdict": m["verdict"],
                "basis": p["local_basis"] if side == "local" else "",
                "title": f"{p['tensor']} ({p['op']}, {p['op_type']}): {what} {shown}, {m['verdict']}",
            })
    return {"key": key, "title": title, "unit": unit, "lo": lo, "hi": hi,
            "ticks": ticks(lo, hi, 4, "g"), "lines": lines, **series}
