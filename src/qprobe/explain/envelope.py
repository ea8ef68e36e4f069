"""The safe envelope: the parameter ranges in which the target computes an op class correctly.

``parameter`` is ``operand_ratio`` (an operand's scale / the output's scale) for eltwise and
concat, ``multiplier`` (``sx * sw / sy``) for conv and gemm, and ``accumulator`` (the largest
|accumulator| of a conv channel) for conv's second sweep. A measured point is safe when
the target agrees with the reference within rounding (every output within 1 LSB, mean
delta within 0.5 LSB); a parameter value measured several times (zero point variants) is
safe only if all its points are. ``safe`` lists closed-open ranges between measured points;
``boundary`` is the first unsafe value above 1.0. ``fix`` reads this from the JSON alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SAFE_MAX_ABS = 1
SAFE_MEAN = 0.5


@dataclass(frozen=True)
class EnvelopePoint:
    ratio: float
    expected: float
    effective: float | None
    exact_share: float
    mean_delta_lsb: float = 0.0
    max_abs_lsb: int = 0
    zero_points: tuple[int, ...] = ()

    @property
    def safe(self) -> bool:
        return self.max_abs_lsb <= SAFE_MAX_ABS and abs(self.mean_delta_lsb) <= SAFE_MEAN

    def to_json(self) -> dict[str, Any]:
        eff = self.effective if self.effective is not None and math.isfinite(self.effective) else None
        return {"ratio": self.ratio, "expected": self.expected, "effective": eff, "exact_share": self.exact_share,
                "mean_delta_lsb": self.mean_delta_lsb, "max_abs_lsb": self.max_abs_lsb,
                "zero_points": list(self.zero_points), "safe": self.safe}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EnvelopePoint:
        return cls(float(d["ratio"]), float(d["expected"]), d["effective"], float(d["exact_share"]),
                   float(d.get("mean_delta_lsb", 0.0)), int(d.get("max_abs_lsb", 0)), tuple(d.get("zero_points", ())))


@dataclass(frozen=True)
class Envelope:
    op_class: str
    parameter: str
    safe: tuple[tuple[float, float], ...]
    boundary: float | None
    points: tuple[EnvelopePoint, ...]
    statement: str

    def contains(self, value: float) -> bool:
        return any(lo <= value < hi for lo, hi in self.safe)

    def to_json(self) -> dict[str, Any]:
        return {"op_class": self.op_class, "parameter": self.parameter, "safe": [list(r) for r in self.safe],
                "boundary": self.boundary, "points": [p.to_json() for p in self.points], "statement": self.statement}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Envelope:
        return cls(d["op_class"], d["parameter"], tuple((float(a), float(b)) for a, b in d["safe"]),
                   None if d["boundary"] is None else float(d["boundary"]),
                   tuple(EnvelopePoint.from_json(p) for p in d["points"]), d["statement"])


def by_value(points: Sequence[EnvelopePoint]) -> list[tuple[float, bool]]:
    safe: dict[float, bool] = {}
    for p in points:
        safe[p.ratio] = safe.get(p.ratio, True) and p.safe
    return sorted(safe.items())


def safe_ranges(points: Sequence[EnvelopePoint]) -> tuple[tuple[float, float], ...]:
    values = by_value(points)
    ranges: list[tuple[float, float]] = []
    start: float | None = None
    for v, ok in values:
        if ok and start is None:
            start = v
        elif not ok and start is not None:
            ranges.append((start, v))
            start = None
    if start is not None:
        ranges.append((start, math.nextafter(values[-1][0], math.inf)))
    return tuple(ranges)


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.4g}" if abs(v - round(v, 3)) > 5e-4 or v < 0.1 else f"{v:.3f}"


def statement(op_type: str, parameter: str, ranges: Sequence[tuple[float, float]],
              values: Sequence[tuple[float, bool]], boundary: float | None) -> str:
    label = {"operand_ratio": "operand ratio", "multiplier": "requantization multiplier",
             "accumulator": "accumulator magnitude"}.get(parameter, parameter)
    lo, hi = values[0][0], values[-1][0]
    span = f"(measured from {_fmt(lo)} to {_fmt(hi)})"
    if not ranges:
        return f"{op_type} is wrong for every {label} measured {span}"
    if (len(ranges) == 1 and ranges[0][0] == lo and boundary is not None
            and all(not ok for v, ok in values if v >= boundary)):
        return (f"{op_type} is exact within rounding for every {label} below {_fmt(boundary)}, wrong at and above it "
                f"{span}")
    if len(ranges) == 1 and ranges[0][0] == lo and ranges[0][1] > hi:
        return f"{op_type} is exact within rounding for every {label} measured {span}"
    parts = ", ".join(f"[{_fmt(a)}, {_fmt(b)})" for a, b in ranges)
    return f"{op_type} is exact within rounding for {label}s in {parts}, wrong elsewhere {span}"


def build_envelope(op_class: str, op_type: str, parameter: str, points: Sequence[EnvelopePoint]) -> Envelope | None:
    if not points:
        return None
    values = by_value(points)
    ranges = safe_ranges(points)
    unsafe_above = [v for v, ok in values if not ok and v > 1.0]
    boundary = min(unsafe_above) if unsafe_above else None
    return Envelope(op_class, parameter, ranges, boundary, tuple(sorted(points, key=lambda p: p.ratio)),
                    statement(op_type, parameter, ranges, values, boundary))
