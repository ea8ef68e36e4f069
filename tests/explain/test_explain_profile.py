"""The fitted profile's TOML: written by explain's own writer, read back by the engine's loader.

Oracles: ``tomllib`` (the standard reader) for the writer; for profile documents, the
engine's ``load_profile_file`` must give, for the op's class, exactly the hypothesis's
numerics on every knob its kernel reads, and the base's numerics everywhere else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from qprobe.backends.engine import OP_CLASSES, load_profile_file
from qprobe.explain.compose import base_profile, bases
from qprobe.explain.fitted import profile_document, write_profile
from qprobe.explain.space import candidates
from qprobe.explain.tomlwrite import dumps


def test_the_writer_round_trips_through_tomllib() -> None:
    doc = {"name": 'odd "name"\twith\nescapes \\ and é', "base": "arith16-wrap", "flag": True, "ratio": 2.05,
           "defaults": {"compute": "float"}, "eltwise": {"coeff_bits": 16, "coeff_overflow": "wrap"},
           "ops": {"Add": {"compute": "integer"}}, "nodes": {"a.b c": {"shift_o": 13}, "x": {"eltwise": {"y": 1}}}}
    text = dumps(doc, "a header\nwith two lines")
    assert text.startswith("# a header\n# with two lines\n")
    assert tomllib.loads(text) == doc


def test_the_writer_refuses_what_toml_profiles_cannot_hold() -> None:
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
    with pytest.raises(TypeError):
        dumps({"x": [1, 2]})


@pytest.mark.parametrize("op_class,op_type", [("eltwise", "Add"), ("eltwise", "Sub"), ("concat", "Concat"),
                                              ("conv", "Conv"), ("gemm", "Gemm")])
def test_profile_documents_load_as_the_hypothesis_on_its_base(op_class: str, op_type: str, tmp_path: Path) -> None:
    cands = candidates(op_class, op_type)
    rng = np.random.default_rng(3)
    for i in rng.choice(len(cands), size=12, replace=False):
        cand = cands[int(i)]
        for base in bases():
            doc = profile_document("fitted", "test", base, op_class, op_type, cand)
            _text, path = write_profile(doc, "header", tmp_path / "p.toml")
            loaded = load_profile_file(path)
            got, want = loaded.numerics_for(op_class, op_type), cand.numerics
            for knob in (*cand.reads, "compute"):
                if knob == "compute" and want.compute != "float" and got.compute != "float":
                    continue  # integer and integer8 are the same for 8-bit groups
                assert getattr(got, knob) == getattr(want, knob), (base, cand, knob)
            for other in OP_CLASSES:
                if other != op_class:
                    assert loaded.classes[other] == base_profile(base).classes[other], (base, other)
