"""The hypothesis space, as data: for each op class, families of knob settings.

A ``Family`` names the knobs one kernel path reads (``fixed`` values and ``varied``
alternatives, each alternative a small dict of knobs so that coupled knobs such as
``acc_bits``/``acc_overflow`` vary together); its hypotheses are the product of the
alternatives. The values come from the engine's ``KNOBS`` and from what integer units
are known to do (docs/arithmetic.md, docs/neural-art.md): the
affine families include the knobs the engine gained for explain (a coefficient that
does not fit taken at lower precision with or without compensation, shifts per operand
or shared, the compiler's coefficient rounding, double rounding). Knobs a family does
not name keep ``Numerics()`` defaults; knobs its kernel does not read do not matter.

``candidates(op_class, op_type)`` enumerates a class's hypotheses, each expressed against
the built-in profile it is closest to (``base`` + the knobs that differ), which is how
explain prints them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from qprobe.backends.engine.builtin_profiles import get_profile, known_profiles
from qprobe.backends.engine.profiles import Numerics
from qprobe.errors import ProfileError

Knobs = dict[str, Any]
ROUND = ("half_even", "half_up", "half_away", "floor", "truncate")


def _alts(knob: str, values: tuple[Any, ...]) -> tuple[Knobs, ...]:
    return tuple({knob: v} for v in values)


@dataclass(frozen=True)
class Family:
    name: str
    fixed: Mapping[str, Any]
    varied: tuple[tuple[Knobs, ...], ...] = field(default=())

    @property
    def reads(self) -> tuple[str, ...]:
        keys = dict.fromkeys(self.fixed)
        for alts in self.varied:
            for alt in alts:
                keys.update(dict.fromkeys(alt))
        return tuple(keys)

    def settings(self) -> Iterator[Knobs]:
        for combo in itertools.product(*self.varied):
            out = dict(self.fixed)
            for alt in combo:
                out.update(alt)
            yield out


_ZP = _alts("zero_point", ("after", "before"))
_ACC: tuple[Knobs, ...] = ({"acc_bits": 32, "acc_overflow": "exact"},
        *({"acc_bits": b, "acc_overflow": o} for b in (16, 20, 24, 32) for o in ("wrap", "saturate")))
_AFFINE_CORE = (
    _alts("coeff_bits", (12, 16, 24)), _alts("shift_o", (12, 13, 14, 15)),
    _alts("coeff_overflow", ("saturate", "wrap", "lower", "lower_uncompensated")),
    _alts("coeff_shift", ("per_operand", "shared")), _alts("coeff_rounding", ("half_away", "floor", "truncate")),
    _alts("rounding", ROUND), _alts("operand_rounding", ("floor", "truncate", "half_up")),
)
_AFFINE_FIXED = {"structure": "affine", "double_round": 0, "intermediate_bits": 0}
_AFFINE_STAGES = Family("affine, staged rounding and saturation", {
    "structure": "affine", "coeff_bits": 16, "shift_o": 14, "coeff_shift": "per_operand",
    "coeff_rounding": "half_away", "operand_rounding": "floor"}, (
    _alts("coeff_overflow", ("saturate", "wrap", "lower")), _alts("rounding", ("half_up", "half_even", "floor")),
    _alts("double_round", (0, 1, 2, 4, 8)), _alts("intermediate_bits", (0, 16, 24)),
))
_REQUANT = (
    Family("float multiplier", {"structure": "rescale_each"},
           (_alts("scale", ("float32", "double", "exact")), _alts("rounding", ROUND), _ZP)),
    Family("fixed-point multiplier", {"structure": "rescale_each", "scale": "fixed"},
           (_alts("multiplier_bits", (8, 12, 15, 16, 22, 31)), _alts("rounding", ROUND), _ZP)),
    Family("tflite double rounding", {"structure": "rescale_each", "scale": "fixed", "multiplier_bits": 31,
                                      "rounding": "tflite_double"}, (_ZP,)),
    Family("power-of-two multiplier", {"structure": "rescale_each", "scale": "pow2"}, (_alts("rounding", ROUND), _ZP)),
)
_FLOAT = Family("float fallback (DQ -> op -> Q in float32)", {"compute": "float"})

SPACE: dict[str, tuple[Family, ...]] = {
    "eltwise": (
        Family("rescale each operand, float", {"structure": "rescale_each"},
               (_alts("scale", ("float32", "double", "exact")), _alts("rounding", ROUND), _ZP)),
        Family("rescale each operand, fixed point", {"structure": "rescale_each", "scale": "fixed",
                                                     "intermediate_bits": 0},
               (_alts("multiplier_bits", (8, 12, 16, 22, 31)), _alts("rounding", ROUND), _ZP,
                _alts("double_round", (0, 1, 4)))),
        Family("rescale each operand, power of two", {"structure": "rescale_each", "scale": "pow2"},
               (_alts("rounding", ROUND), _ZP)),
        Family("TFLite / Ethos-U pre-shifted", {"scale": "fixed", "pre_shift16": 15, "intermediate_bits": 0},
               (_alts("structure", ("tflite", "ethos_u")), _alts("multiplier_bits", (15, 31)),
                _alts("rounding", ("tflite_double", "half_up", "half_away", "half_even")),
                _alts("pre_shift8", (20, 15, 10)))),
        Family("affine unit", _AFFINE_FIXED, _AFFINE_CORE),
        _AFFINE_STAGES,
        _FLOAT,
    ),
    "concat": (*_REQUANT, Family("affine unit", _AFFINE_FIXED, _AFFINE_CORE), _FLOAT),
    "conv": tuple(Family(f.name, f.fixed, (*f.varied, _ACC)) for f in _REQUANT if f.name != "affine unit") + (_FLOAT,),
}
SPACE["gemm"] = SPACE["conv"]
SPACE["mul"] = SPACE["conv"]  # Mul reads the same knobs: accumulator, then the requantizer


@dataclass(frozen=True)
class Candidate:
    """One point of the space: the knobs its family reads, against its nearest base."""

    op_class: str
    family: str
    base: str
    knobs: Knobs  # the knobs that differ from the base's numerics for this op
    numerics: Numerics
    reads: tuple[str, ...] = ()  # the knobs its kernel reads

    @property
    def complexity(self) -> int:
        return len(self.knobs)


@cache
def _base_numerics(op_class: str, op_type: str) -> tuple[tuple[str, Numerics], ...]:
    return tuple((name, get_profile(name).numerics_for(op_class, op_type)) for name in known_profiles())


def as_candidate(op_class: str, op_type: str, family: str, setting: Knobs, reads: tuple[str, ...]) -> Candidate:
    """``setting`` on its nearest built-in base (fewest differing knobs, then one of the same structure,
    then the built-in order)."""
    full = Numerics().with_knobs(setting)
    best: tuple[tuple[int, bool], str, Knobs] | None = None
    for name, base in _base_numerics(op_class, op_type):
        keys = reads if "compute" in reads or base.compute != "float" else (*reads, "compute")
        diff = {k: getattr(full, k) for k in keys if getattr(base, k) != getattr(full, k)}
        rank = (len(diff), "structure" in diff)  # ties: a base of the same structure reads more naturally
        if best is None or rank < best[0]:
            best = (rank, name, diff)
    assert best is not None
    _n, name, diff = best
    base_num = dict(_base_numerics(op_class, op_type))[name]
    return Candidate(op_class, family, name, diff, base_num.with_knobs(diff), reads)


def candidates(op_class: str, op_type: str) -> list[Candidate]:
    """Every hypothesis of the class, once per distinct setting of the knobs its kernel reads."""
    out: list[Candidate] = []
    seen: set[tuple[Any, ...]] = set()
    for fam in SPACE.get(op_class, ()):
        reads = fam.reads
        for setting in fam.settings():
            key = tuple(sorted(setting.items()))
            if key in seen:
                continue
            seen.add(key)
            try:
                out.append(as_candidate(op_class, op_type, fam.name, setting, reads))
            except ProfileError:
                continue  # an impossible combination (e.g. tflite_double on 15 bits)
    return out


def space_size(op_class: str) -> int:
    return sum(1 for fam in SPACE.get(op_class, ()) for _s in fam.settings())
