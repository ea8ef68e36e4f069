"""The rule-out checklist: what the evidence rules out, and what only a look at the board can.

The first items are answered by the stages' documents (probe effect, the culprit's inputs,
its isolated run, determinism, an arithmetic explanation). The rest are the non-numeric faults
of an NPU deployment that look like numeric ones (see the project's notes on the ST Edge AI
toolchain): no run of a model can rule them out, so they stay open unless the target's errors
are reproduced bit for bit by an arithmetic hypothesis, which makes them unlikely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RULED_OUT, CONFIRMED, OPEN, UNLIKELY, NOT_CHECKED, FAILS = (
    "ruled out", "confirmed", "open", "unlikely", "not checked", "does not hold")

BOARD_ITEMS: tuple[tuple[str, str], ...] = (
    ("Cache coherency", "the CPU's data cache and the NPU disagree about the input/output buffers: clean and "
                        "invalidate them (32-byte aligned) around each inference"),
    ("NPU RAM banks", "a RAM bank the NPU uses is still powered down (its shutdown bit set in the RAM configuration)"),
    ("Bus access rights", "the resource-isolation / memory firewall does not let the NPU master reach its buffers"),
    ("External flash", "weights in external flash not memory-mapped before the NPU is configured, or never "
                       "programmed (flash programming skipped)"),
    ("Tool and firmware versions", "compiler, runtime and firmware come from different releases, or the board "
                                   "runs a stale image"),
    ("Clocks and voltage", "the NPU's clock or supply voltage is outside its rated configuration"),
)


def _item(check: str, status: str, evidence: str, source: str, what: str = "") -> dict[str, str]:
    return {"check": check, "status": status, "evidence": evidence, "source": source, "what": what}


def _probe_effect(comparison: Mapping[str, Any] | None) -> dict[str, str]:
    check = "Exposing tensors changes what the target computes"
    if comparison is None:
        return _item(check, NOT_CHECKED, "no comparison in this report", "compare")
    eff = next((e for e in comparison.get("probe_effects", ()) if e["backend"] == comparison["target"]), None)
    if eff is None or not eff.get("checked"):
        return _item(check, NOT_CHECKED, (eff or {}).get("detail", "not checked"), "compare")
    if eff.get("changed_outputs"):
        return _item(check, FAILS, "probing changed the target's final outputs " + ", ".join(eff["changed_outputs"])
                     + ": per-tensor rows are not what the deployed model computes", "compare")
    return _item(check, RULED_OUT, "the final outputs are identical with and without probes", "compare")


def _inputs(divergence: Mapping[str, Any] | None) -> list[dict[str, str]]:
    c = (divergence or {}).get("culprit")
    if not c:
        return []
    ins = (divergence or {}).get("culprit_inputs") or []
    out = []
    check = f"The inputs of {c['op']} already differ on the target"
    if ins:
        bad = [r["name"] for r in ins if r["verdict"] == "fail"]
        status, why = (FAILS, f"failing inputs: {', '.join(bad)}") if bad else (
            RULED_OUT, "; ".join(f"{r['name']}: {r['verdict']} ({r['reason']})" for r in ins))
        out.append(_item(check, status, why, "localize"))
    if c.get("isolated"):
        failed = any(r["verdict"] == "fail" for r in c["isolated"])
        out.append(_item(f"{c['op']} makes the error itself", CONFIRMED if failed else FAILS,
                         c.get("basis", ""), "localize"))
    return out


def _explained(expl: Mapping[str, Any] | None) -> list[dict[str, str]]:
    if expl is None:
        return [_item("An arithmetic hypothesis reproduces the target's codes", NOT_CHECKED,
                      "no explanation in this report", "explain")]
    out = []
    pattern = expl.get("pattern") or {}
    if pattern.get("consistency") is not None:
        c = float(pattern["consistency"])
        out.append(_item("The target is not deterministic (memory, DMA, a race)", RULED_OUT if c >= 0.9999 else OPEN,
                         f"the same inputs give the same output for {100 * c:.2f}% of the culprit's outputs",
                         "explain"))
    best = expl.get("best")
    share = "" if not best else f"{100 * float(best['exact_match']):.3f}% of the culprit's codes"
    out.append(_item("An arithmetic hypothesis reproduces the target's codes",
                     CONFIRMED if expl.get("explained") else FAILS,
                     (f"the best hypothesis reproduces {share}" if best else "no hypothesis space for this op"),
                     "explain"))
    for cause in expl.get("causes") or ():
        out.append(_item(f"Non-arithmetic cause: {cause['name']}", OPEN, cause.get("evidence", ""), "explain"))
    return out


def build_checklist(comparison: Mapping[str, Any] | None, divergence: Mapping[str, Any] | None,
                    expl: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The checklist; for a model that passes only what the comparison checked (nothing is left to rule out)."""
    failing = bool((comparison or {}).get("passed") is False or (divergence or {}).get("found"))
    if not failing:
        return [_probe_effect(comparison)]
    items = [_probe_effect(comparison), *_inputs(divergence), *_explained(expl)]
    explained = bool((expl or {}).get("explained"))
    if explained:
        status, why = UNLIKELY, "an arithmetic hypothesis reproduces the target's error bit for bit"
    else:
        status, why = OPEN, "no model run can rule it out: look at the board"
    items += [_item(check, status, why, "on the board", what) for check, what in BOARD_ITEMS]
    return items
