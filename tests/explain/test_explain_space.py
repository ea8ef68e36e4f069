"""The hypothesis space: data over the engine's knobs, valid numerics, thousands of hypotheses for eltwise.

Oracle: the engine's own ``KNOBS`` table and ``Numerics`` validation, and each family's
definition (the knobs it names are the ones that differ or equal, never anything else).
"""

from __future__ import annotations

from qprobe.backends.engine import KNOBS, Numerics
from qprobe.explain.space import SPACE, candidates, space_size


def test_every_family_names_engine_knobs_with_allowed_values() -> None:
    for fams in SPACE.values():
        for fam in fams:
            for setting in fam.settings():
                for knob, value in setting.items():
                    assert knob in KNOBS, (fam.name, knob)
                    allowed = KNOBS[knob][0]
                    assert allowed is None or value in allowed, (fam.name, knob, value)


def test_candidates_are_their_family_settings_on_the_nearest_base() -> None:
    cands = candidates("eltwise", "Add")
    assert len(cands) > 4000  # thousands of combinations for eltwise
    assert space_size("eltwise") >= len(cands)
    for c in cands[::37]:
        fam = next(f for f in SPACE["eltwise"] if f.name == c.family)
        assert c.reads == fam.reads
        matching = [s for s in fam.settings() if all(getattr(c.numerics, k) == v for k, v in s.items())]
        assert len(matching) == 1, c
        assert set(c.knobs) <= {*fam.reads, "compute"}


def test_the_new_knobs_are_in_the_affine_space() -> None:
    seen = {k: {getattr(c.numerics, k) for c in candidates("eltwise", "Add") if c.numerics.structure == "affine"}
            for k in ("coeff_overflow", "coeff_shift", "coeff_rounding", "double_round")}
    assert seen["coeff_overflow"] >= {"wrap", "saturate", "lower", "lower_uncompensated"}
    assert seen["coeff_shift"] == {"per_operand", "shared"}
    assert {"floor", "truncate"} <= seen["coeff_rounding"]
    assert len(seen["double_round"]) > 1
    assert Numerics().coeff_shift == "per_operand" and Numerics().double_round == 0  # defaults keep old behaviour
