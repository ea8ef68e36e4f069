"""Small helpers the report's views share: a tensor row's metrics as plain numbers, axis ticks, formats.

Every view reads the stages' JSON documents (not their classes), so a report can be rebuilt
from stored documents alone and stays loosely coupled to the stages that wrote them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def finite(v: Any) -> float | None:
    """``v`` as a float, or None when it is missing or not finite."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def metrics(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The numbers a chart or table shows for one ``TensorComparison`` JSON row."""
    if row is None:
        return None
    st, lsb = row.get("st") or {}, row.get("lsb") or {}
    exact = finite(lsb.get("exact_share"))
    return {
        "cos": finite(st.get("cos")), "rmse": finite(st.get("rmse")),
        "mean_delta_lsb": finite(lsb.get("mean_delta_lsb")), "max_abs_lsb": finite(lsb.get("max_abs_lsb")),
        "exact_pct": None if exact is None else 100.0 * exact,
        "verdict": row.get("verdict", ""), "reason": row.get("reason", ""),
    }


def scale_of(row: Mapping[str, Any] | None) -> tuple[float | None, int | None]:
    """(scale, zero point) of a per-tensor quantized row, else (None, None)."""
    q = (row or {}).get("quant")
    if not q or len(q.get("scale", ())) != 1:
        return None, None
    return finite(q["scale"][0]), int(q["zero_point"][0])


def fmt(v: float | None, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def pct(v: float | None) -> str:
    """A percentage that shows 100 only when it is exactly 100."""
    if v is None:
        return "-"
    return "100" if v == 100.0 else f"{min(v, 99.99):.2f}"


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-2.5-5 step that divides ``span`` into about ``target`` intervals."""
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    return next((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), 10 * mag)


def ticks(lo: float, hi: float, target: int = 5, spec: str = "g") -> list[dict[str, Any]]:
    """Axis ticks between ``lo`` and ``hi``: value, label and position ``v`` in [0, 1]."""
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    k = 0
    while first + k * step <= hi + 1e-9 * step:
        value = round(first + k * step, 10)
        out.append({"value": value, "label": format(value, spec), "v": norm(value, lo, hi)})
        k += 1
    return out


def norm(value: float | None, lo: float, hi: float) -> float | None:
    """``value`` mapped to [0, 1] on the axis [lo, hi] (clamped); None stays None."""
    if value is None or hi <= lo:
        return None
    return min(1.0, max(0.0, (value - lo) / (hi - lo)))


def by_name(rows: Sequence[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return {r["name"]: r for r in rows or ()}
