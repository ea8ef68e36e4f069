"""The culprit's neighbourhood: the ops that feed it and the ops it feeds, as a small graph.

Nodes are ops (localize's units: a compute op with its QDQ nodes), placed in three columns
(producers, the culprit, consumers); edges are the quantized tensors between them, each with
its scale, zero point, type, the target's verdict on it and, for the culprit's operands, the
operand-to-output scale ratio (the number the motivating case's defect depends on). Without
a culprit the first failing op is the focus (not confirmed in isolation). Positions are in
[0, 1]; the template scales them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_PER_COLUMN = 4
COLUMNS = (0.1, 0.5, 0.9)


def group_op(members: list[str], name: str, ops: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A fused group as one op: the inputs its members read from outside it, its last member's outputs."""
    inside = {t for m in members for t in ops[m]["outputs"]}
    inputs = [t for m in members for t in ops[m]["inputs"] if t not in inside]
    return {"name": name, "op_type": "+".join(ops[m]["op_type"] for m in members),
            "inputs": list(dict.fromkeys(inputs)), "outputs": list(ops[members[-1]]["outputs"])}


def focus_of(divergence: Mapping[str, Any] | None, comparison: Mapping[str, Any] | None,
             ops: dict[str, Mapping[str, Any]]) -> tuple[str, str] | None:
    """(op, how it was found): the culprit (a fused group joins ``ops`` as one op), else the producer of
    the first failing tensor."""
    c = (divergence or {}).get("culprit")
    members = list(c.get("group") or ()) if c else []
    if c and members and all(m in ops for m in members):
        ops[c["op"]] = group_op(members, c["op"], ops)
        return c["op"], "culprit: a fused group that diverges as one unit"
    if c and c["op"] in ops:
        return c["op"], "culprit" if c["role"] == "culprit" else "first failing op (not confirmed in isolation)"
    first = (comparison or {}).get("first_failing")
    for op in ops.values():
        if first is not None and first in op["outputs"]:
            return op["name"], "first failing op (not isolated)"
    return None


def _node(name: str, op_type: str, col: int, j: int, k: int, points: Mapping[str, Any], out: str | None,
          focus: bool) -> dict[str, Any]:
    p = points.get(out or "") or {}
    acc = p.get("acc") or {}
    return {"id": name, "op_type": op_type, "col": col, "x": COLUMNS[col], "y": (j + 0.5) / k,
            "role": p.get("role", ""), "verdict": acc.get("verdict", ""), "cos": acc.get("cos"), "focus": focus,
            "tensor": out}


def _tensor(name: str, quant: Mapping[str, Any], points: Mapping[str, Any]) -> dict[str, Any]:
    q = quant.get(name) or {}
    acc = (points.get(name) or {}).get("acc") or {}
    return {"tensor": name, "scale": q.get("scale"), "zero_point": q.get("zero_point"), "dtype": q.get("dtype"),
            "per_axis": q.get("per_axis", 0), "verdict": acc.get("verdict", ""), "cos": acc.get("cos")}


def _labels(e: dict[str, Any]) -> None:
    """The one or two lines an edge's label shows (and their width in characters, for its box)."""
    if e.get("scale") is not None:
        first = f"scale {e['scale']:.5g} · zp {e['zero_point']} · {e['dtype']}"
    else:
        first = f"per-axis ({e['per_axis']} scales)" if e.get("per_axis") else "float"
    second = "" if e.get("ratio") is None else f"operand {e['operand']} / output = {e['ratio']:.3f}"
    e.update({"line1": first, "line2": second, "chars": max(len(first), len(second))})


def build_neighbourhood(
    focus: tuple[str, str] | None, ops: Mapping[str, Mapping[str, Any]], quant: Mapping[str, Any],
    ratios: Mapping[str, list[float]], points: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The view (``points``: series points by tensor name, for the target's verdicts)."""
    if focus is None:
        return None
    name, how = focus
    op = ops[name]
    producer = {t: o for o in ops.values() for t in o["outputs"]}
    feeds = [(t, producer.get(t)) for t in op["inputs"]][:MAX_PER_COLUMN]
    eats = [o for o in ops.values() if o is not op and any(t in o["inputs"] for t in op["outputs"])]
    out = op["outputs"][0] if op["outputs"] else None
    nodes = [_node(name, op["op_type"], 1, 0, 1, points, out, True)]
    edges = []
    out_scale = (quant.get(out or "") or {}).get("scale")
    for j, (t, p) in enumerate(feeds):
        pid = p["name"] if p else f"input {t}"
        if p is None or all(n["id"] != pid for n in nodes):
            nodes.append(_node(pid, p["op_type"] if p else "graph input", 0, j, len(feeds), points,
                               p["outputs"][0] if p else t, False))
        e = _tensor(t, quant, points)
        e.update({"from": pid, "to": name, "kind": "operand", "operand": j + 1, "label": True,
                  "slot": j - (len(feeds) - 1) / 2,
                  "ratio": e["scale"] / out_scale if e["scale"] and out_scale else None})
        edges.append(e)
    shown = eats[:MAX_PER_COLUMN]
    for j, o in enumerate(shown):
        nodes.append(_node(o["name"], o["op_type"], 2, j, len(shown), points, o["outputs"][0] if o["outputs"] else None,
                           False))
        e = _tensor(out or "", quant, points) if out else {}
        e.update({"from": name, "to": o["name"], "kind": "output", "ratio": None, "label": j == 0,
                  "slot": j - (len(shown) - 1) / 2})
        edges.append(e)
    for e in edges:
        _labels(e)
    pos = {n["id"]: (n["x"], n["y"]) for n in nodes}
    for e in edges:
        (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
        e.update({"x1": x1, "y1": y1, "x2": x2, "y2": y2, "mx": (x1 + x2) / 2, "my": (y1 + y2) / 2})
    rows = max(len(feeds), len(shown), 1)
    return {
        "focus": name, "op_type": op["op_type"], "how": how, "rows": rows, "nodes": nodes, "edges": edges,
        "output": _tensor(out, quant, points) if out else None, "ratios": ratios.get(name),
        "more_consumers": max(0, len(eats) - MAX_PER_COLUMN), "more_inputs": max(0, len(op["inputs"]) - MAX_PER_COLUMN),
    }
