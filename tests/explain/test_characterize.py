"""Characterization runs map the target's safe envelope within the run budget.

Target: ``engine:arith16-wrap``, whose 16-bit coefficient at shift 14 stops fitting where
``round(ratio * 2**14)`` passes 32767, i.e. from ratio 32767.5 / 16384 = 1.99997 on
(st-edge-ai.md section 3.4): the closed form is the oracle for the boundary. Runs are
counted by a wrapper around the target.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from explain_support import Counting

from qprobe.backends import create_backend
from qprobe.explain import Envelope, EnvelopePoint, explain
from qprobe.explain.characterize import characterize
from qprobe.explain.envelope import build_envelope
from qprobe.explain.space import candidates
from qprobe.model.inputs import InputSet

BOUNDARY = 32767.5 / 16384


@pytest.mark.slow
def test_characterizing_arith16_wrap_puts_the_boundary_at_two(tcn: tuple[ir.Model, InputSet]) -> None:
    model, inputs = tcn
    target = Counting(create_backend("engine:arith16-wrap"))
    e = explain(model, create_backend("ort-fused"), target, inputs, node="block0_add", characterize=True, budget=4)
    env = e.envelope
    assert env is not None and env.boundary is not None
    assert e.characterization_runs <= 4
    assert e.target_runs == target.opened == 2 + e.characterization_runs  # probed model, isolated cut, probes
    assert abs(env.boundary - 2.0) < 1e-3 and env.boundary >= BOUNDARY * (1 - 1e-6)
    assert env.contains(1.5) and env.contains(1.999) and not env.contains(2.0) and not env.contains(2.05)
    assert "below 2.000" in env.statement
    assert e.explained and e.best is not None and e.best.numerics("Add").coeff_overflow == "wrap"


def test_the_first_sweep_alone_brackets_the_boundary() -> None:
    """One run (budget 1): the sweep is dense around powers of two, so 2 is bracketed to 0.1%."""
    target = Counting(create_backend("engine:arith16-wrap"))
    ch = characterize("eltwise", "Add", create_backend("ort-fused"), target, lambda sets: [], 1,
                      np.random.default_rng(0))
    assert ch.runs == target.opened == 1
    env = ch.envelopes[0]
    assert env is not None and env.boundary is not None
    safe_below = max(p.ratio for p in env.points if p.safe and p.ratio < 2.5)
    assert 1.99 < safe_below < BOUNDARY <= env.boundary <= 2.0 + 1e-9
    assert ch.notes  # the budget ended with refinements left


def test_the_top_hypotheses_disagreement_steers_the_next_probes() -> None:
    """Two hypotheses that differ only at large ratios: the extra probes go there."""
    cands = {c.knobs.get("coeff_overflow"): c for c in candidates("eltwise", "Add")
             if c.base == "arith16-wrap" and set(c.knobs) <= {"coeff_overflow"}}
    from qprobe.explain.characterize import disagreements

    probes = disagreements("Add", [cands[None], cands["saturate"]], set())
    assert probes and min(p.ratio for p in probes) >= 1.99


def test_an_envelope_round_trips_and_states_its_ranges() -> None:
    pts = [EnvelopePoint(r, r, r, 1.0 if r < 3 else 0.2, 0.0 if r < 3 else 4.0, 0 if r < 3 else 9)
           for r in (0.5, 1.0, 2.0, 2.9, 3.0, 8.0)]
    env = build_envelope("eltwise", "Sub", "operand_ratio", pts)
    assert env is not None and env.boundary == 3.0
    assert env.safe == ((0.5, 3.0),)
    assert Envelope.from_json(env.to_json()) == env
    assert env.statement.startswith("Sub is exact within rounding for every operand ratio below 3.000")


def test_a_saturating_conv_accumulator_gets_an_accumulator_envelope() -> None:
    """A 16-bit saturating accumulator: exact until clipping costs a whole LSB, just above 2**15
    (the probes keep each channel's largest accumulator at 100 output codes, so the first
    visible error is at 32768 * (1 + 1/100) at most, and weights move the bound in steps of 131)."""
    target = Counting(create_backend("engine:onnxruntime", {"conv.acc_bits": "16", "conv.acc_overflow": "saturate"}))
    ch = characterize("conv", "Conv", create_backend("ort-fused"), target, lambda sets: [], 4,
                      np.random.default_rng(0))
    assert ch.runs == target.opened <= 4
    by = {e.parameter: e for e in ch.envelopes}
    assert by["multiplier"].boundary is None and by["multiplier"].contains(1e-3)
    acc = by["accumulator"]
    assert acc.boundary is not None and 2**15 < acc.boundary <= 2**15 * 1.01 + 2 * 131
    assert acc.contains(30000) and not acc.contains(40000)
