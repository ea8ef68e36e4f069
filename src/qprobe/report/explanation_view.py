"""The explanation view, from an ``qprobe.explanation/1`` document: hypotheses, model-free fit, envelope.

The envelope chart plots the *effective* coefficient the target applies to an operand
against the operand-to-output scale ratio it was asked for (log2 axis), with the expected
line (effective = ratio), the safe ranges, the first unsafe ratio and the culprit's own
operands from the model-free fit. Positions are in [0, 1]; the template scales them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qprobe.report.cells import finite, fmt, norm, ticks

MAX_HYPOTHESES = 12


def hypothesis_label(h: Mapping[str, Any]) -> str:
    """A hypothesis as its base profile and the knobs that differ from it."""
    knobs = h.get("knobs") or {}
    changes = ", ".join(f"{k}={v}" for k, v in knobs.items())
    return f"{h['base']} + {changes}" if changes else f"{h['base']} (as is)"


def _hypothesis_row(rank: int, h: Mapping[str, Any]) -> dict[str, Any]:
    fails = h.get("model_failures")
    return {
        "rank": rank, "label": hypothesis_label(h), "family": h.get("family", ""),
        "exact_pct": 100.0 * float(h["exact_match"]), "mean_delta_lsb": finite(h.get("mean_delta_lsb")),
        "mean_abs_delta_lsb": finite(h.get("mean_abs_delta_lsb")), "max_abs_lsb": h.get("max_abs_lsb"),
        "whole_model": "-" if fails is None else ("all tensors pass" if not fails else f"{fails} tensor(s) fail"),
        "equivalents": h.get("equivalents", 1),
    }


def _fit(fit: Mapping[str, Any]) -> dict[str, Any]:
    if fit.get("kind") == "operands":
        rows = [{"operand": i + 1, "tensor": r["tensor"], "expected": finite(r.get("expected")),
                 "effective": finite(r.get("effective")), "reference_fit": finite(r.get("reference_fit"))}
                for i, r in enumerate(fit.get("operands", ()))]
        off = fit.get("offset") or {}
        return {"kind": "operands", "rows": rows, "offset": finite(off.get("effective")),
                "offset_reference": finite(off.get("reference_fit")), "points": fit.get("points")}
    if fit.get("kind") == "channels":
        gains = [g for g in (finite(x) for x in fit.get("gains", ())) if g is not None]
        return {"kind": "channels", "gain_min": min(gains) if gains else None,
                "gain_max": max(gains) if gains else None,
                "channels": len(gains), "mean_residual": finite(fit.get("mean_residual"))}
    return {"kind": fit.get("kind") or "none"}


def _pow2_label(e: int) -> str:
    return str(2**e) if e >= 0 else f"1/{2 ** -e}"


def _envelope_chart(env: Mapping[str, Any], fit: Mapping[str, Any]) -> dict[str, Any]:
    pts = [p for p in env.get("points", ()) if finite(p.get("ratio")) and p["ratio"] > 0]
    operands = [r for r in fit.get("rows", ()) if r["expected"] and r["expected"] > 0 and r["effective"] is not None]
    xs = [math.log2(p["ratio"]) for p in pts] + [math.log2(r["expected"]) for r in operands]
    xlo, xhi = (math.floor(min(xs)), math.ceil(max(xs))) if xs else (-4, 4)
    xhi = max(xhi, xlo + 1)
    ys = [v for p in pts if (v := finite(p.get("effective"))) is not None] + [r["effective"] for r in operands]
    ylo, yhi = min([0.0, *ys]), max([1.0, *ys])
    pad = 0.08 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad
    yt = ticks(ylo, yhi, 6, "g")

    def u(ratio: float) -> float | None:
        return norm(math.log2(max(ratio, 2.0**xlo)), xlo, xhi)

    points = [{"u": u(p["ratio"]), "v": norm(finite(p.get("effective")), ylo, yhi), "safe": bool(p.get("safe")),
               "title": f"ratio {p['ratio']:.4g}: effective {fmt(finite(p.get('effective')), '.4g')}, "
                        f"{100 * float(p.get('exact_share', 0)):.1f}% exact, zero points {p.get('zero_points', [])}"}
              for p in pts if finite(p.get("effective")) is not None]
    # the expected line leaves the plot where effective = ratio exceeds the measured range (clipped by the template)
    expected = [{"u": norm(x, xlo, xhi), "v": (2.0**x - ylo) / (yhi - ylo)}
                for x in (xlo + k * (xhi - xlo) / 128 for k in range(129)) if 2.0**x <= yhi + 2 * (yhi - ylo)]
    bands = [{"u0": u(a) if a > 0 else 0.0, "u1": u(b)} for a, b in env.get("safe", ())]
    boundary = finite(env.get("boundary"))
    return {
        "x_ticks": [{"label": _pow2_label(e), "v": norm(e, xlo, xhi)} for e in range(xlo, xhi + 1)],
        "y_ticks": yt, "zero_v": norm(0.0, ylo, yhi), "points": points, "expected": expected, "bands": bands,
        "boundary": None if boundary is None else {"u": u(boundary), "label": f"{boundary:.4g}"},
        "operands": [{"u": u(r["expected"]), "v": norm(r["effective"], ylo, yhi),
                      "label": f"operand {r['operand']}: {r['expected']:.3g} → {r['effective']:.3g}"} for r
                     in operands],
        "without_fit": sum(1 for p in pts if finite(p.get("effective")) is None),
        "parameter": "operand / output scale ratio" if env.get("parameter") == "operand_ratio"
                     else "requantization multiplier",
    }


def build_explanation_view(expl: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if expl is None:
        return None
    best = expl.get("best")
    fit = _fit(expl.get("linear_fit") or {})
    env = expl.get("envelope")
    checks = expl.get("profile_check") or ()
    return {
        "explained": bool(expl.get("explained")), "node": expl.get("node"), "op_type": expl.get("op_type"),
        "op_class": expl.get("op_class"), "sentence": expl.get("sentence", ""),
        "observations": expl.get("observations", ""),
        "best": None if best is None else _hypothesis_row(1, best),
        "hypotheses": [_hypothesis_row(i, h) for i, h in enumerate(expl.get("hypotheses", ())[:MAX_HYPOTHESES], 1)],
        "hypotheses_total": len(expl.get("hypotheses", ())), "search": expl.get("search") or {},
        "fit": fit, "envelope": None if env is None else {
            "statement": env.get("statement", ""), "boundary": finite(env.get("boundary")),
            "safe": [list(r) for r in env.get("safe", ())], "chart": _envelope_chart(env, fit)},
        "target_runs": expl.get("target_runs"), "characterization_runs": expl.get("characterization_runs", 0),
        "profile_base": expl.get("profile_base"), "profile": expl.get("profile"),
        "profile_check": {"total": len(checks), "failing": [c["tensor"] for c in checks if c.get("verdict") == "fail"]},
        "input_checks": list(expl.get("input_checks") or ()), "causes": list(expl.get("causes") or ()),
        "notes": list(expl.get("notes") or ()),
    }
