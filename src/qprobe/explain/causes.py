"""Non-arithmetic causes that fit an error no arithmetic hypothesis explains, and the rule-out checklist.

Rules (on the ``Pattern`` of the culprit's error):

* memory, DMA, cache or a buffer overrun: errors at few positions that do not follow from
  the values (the same inputs give different outputs: ``consistency`` below 1; the error
  rate does not depend on the magnitude; not concentrated at borders);
* padding or layout: the errors sit at tensor borders far more than the borders' share;
* state or a race: the error rate grows with the sample index (or the first samples are
  clean and later ones are not).

The checklist is the one of docs/neural-art.md ("Rule out first"): non-numeric
faults of an NPU deployment that look like numeric ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qprobe.explain.pattern import Pattern

CHECKLIST: tuple[tuple[str, str], ...] = (
    ("caches", "D-cache coherency between the CPU and the NPU: clean and invalidate the (32-byte aligned) "
               "input and output buffers around every inference"),
    ("RAM banks", "NPU RAM banks left in shutdown (the SRAMSD bit of RAMCFG SRAMx CR)"),
    ("access control", "RIF/RISAF not opened for the NPU bus master, so it reads or writes the wrong memory"),
    ("external flash", "XSPI not memory-mapped before NPU_Config, or skip_external_flash_programming left true "
                       "(the weights were never written)"),
    ("tool versions", "firmware, runtime and compiler from different deliveries, or a stale firmware (target "
                      "validation on the N6 skips the network signature check)"),
    ("clocks", "NPU clock or voltage mis-configured"),
)


@dataclass(frozen=True)
class Cause:
    name: str
    score: float
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "evidence": self.evidence}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Cause:
        return cls(d["name"], float(d["score"]), d["evidence"])


def _memory(p: Pattern) -> Cause | None:
    score, why = 0.0, []
    if p.consistency is not None and p.consistency < 0.99:
        score += 0.5
        why.append(f"the same inputs give different outputs ({100 * (1 - p.consistency):.1f}% of outputs "
                   "differ from the usual output for their inputs)")
    if p.error_share < 0.3:
        score += 0.2
        why.append(f"errors are sparse ({100 * p.error_share:.2f}% of outputs)")
    rates = p.magnitude_rates
    if len(rates) >= 2 and min(rates) > 0 and max(rates) < 2.5 * min(rates):
        score += 0.2
        why.append("the error rate does not depend on the magnitude")
    if p.border_share is None or p.border_fraction is None or p.border_share < 2 * p.border_fraction:
        score += 0.1
    return Cause("memory, DMA, cache or a buffer overrun", score, "; ".join(why)) if score >= 0.5 else None


def _layout(p: Pattern) -> Cause | None:
    if p.border_share is None or p.border_fraction is None or p.border_share < max(0.6, 2 * p.border_fraction):
        return None
    return Cause("padding or layout", min(1.0, p.border_share - p.border_fraction + 0.3),
                 f"{100 * p.border_share:.0f}% of the errors sit at tensor borders, which hold "
                 f"{100 * p.border_fraction:.0f}% of the outputs")


def _state(p: Pattern) -> Cause | None:
    r = p.sample_rates
    if len(r) < 2 or r[-1] <= 0:
        return None
    rising = all(b >= a for a, b in zip(r, r[1:], strict=False)) and r[-1] > 2 * max(r[0], 1e-9)
    clean_start = r[0] == 0 and r[-1] > 0
    if not (rising or clean_start):
        return None
    return Cause("state or a race", 0.8 if rising else 0.6,
                 "the error rate grows with the sample index (per quarter of the samples: "
                 + ", ".join(f"{100 * v:.2f}%" for v in r) + ")")


def rank_causes(p: Pattern) -> list[Cause]:
    """The non-arithmetic causes that fit, best first (empty when the error looks arithmetic)."""
    if p.error_share == 0:
        return []
    found = [c for c in (_memory(p), _layout(p), _state(p)) if c is not None]
    return sorted(found, key=lambda c: -c.score)


def checklist_lines() -> list[str]:
    return [f"{name}: {text}" for name, text in CHECKLIST]
