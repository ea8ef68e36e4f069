"""The affine unit's new knobs against the unit's formula in exact rational arithmetic.

Knobs: ``coeff_overflow = lower | lower_uncompensated``, ``coeff_shift = per_operand |
shared``, ``coeff_rounding`` (the compiler's rounding of real coefficients), and
``double_round`` (the output shift rounded in two steps; also in the fixed-point
``rescale_each`` structure). Oracle: the compiler derivation and the unit written here
with ``fractions.Fraction`` and Python integers (rounding by ``math.floor`` and explicit
tie rules), evaluated on a sample of input pairs; the engine runs the QDQ model.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from qdq_ops import Quant, binary_model, concat_model

from qprobe.backends.engine import EngineBackend, get_profile
from qprobe.model.loader import model_from_proto

HALF = Fraction(1, 2)


def rnd(v: Fraction, mode: str) -> int:
    f = math.floor(v)
    if mode == "floor":
        return f
    if mode == "truncate":
        return int(v)  # int() of a Fraction truncates toward zero
    if v - f != HALF:
        return f + (1 if v - f > HALF else 0)
    return {"half_up": f + 1, "half_down": f, "half_away": f + 1 if v > 0 else f, "half_even": f + f % 2}[mode]


def coefficient(r: float, so: int, k: dict[str, object]) -> tuple[int, int]:
    """(A, right shift) by the documented compiler rule."""
    bits, mode = int(k["coeff_bits"]), str(k["coeff_rounding"])
    top = 2 ** (bits - 1) - 1

    def at(e: int) -> int:
        return rnd(Fraction(r) * Fraction(2) ** e, mode)

    if abs(at(so)) <= top:
        sa = 0
        while k["coeff_shift"] == "per_operand" and sa < 31 and abs(at(so + sa + 1)) <= top:
            sa += 1
        return at(so + sa), sa
    if k["coeff_overflow"] == "saturate":
        return (top if r > 0 else -top - 1), 0
    if k["coeff_overflow"] == "wrap":
        return (at(so) + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1), 0
    lost = next(j for j in range(1, 64) if abs(at(so - j)) <= top)
    return at(so - lost), (-lost if k["coeff_overflow"] == "lower" else 0)


def oracle(ops: list[tuple[Quant, int]], out: Quant, codes: list[np.ndarray], k: dict[str, object]) -> np.ndarray:
    """The unit on ``codes`` (one array per operand), clamped to int8."""
    ratios = [sign * (float(np.float32(q[0])) / float(np.float32(out[0]))) for q, sign in ops]
    offset = out[1] - sum(r * q[1] for r, (q, _s) in zip(ratios, ops, strict=True))
    so, top = int(k["shift_o"]), 2 ** (int(k["coeff_bits"]) - 1) - 1
    if k["coeff_shift"] == "shared" and k["coeff_overflow"] == "lower":
        while so > 0 and any(abs(rnd(Fraction(r) * 2**so, str(k["coeff_rounding"]))) > top for r in ratios):
            so -= 1
    coefs = [coefficient(r, so, k) for r in ratios]
    sc = next(s for s in range(32) if -top - 1 <= rnd(Fraction(offset) * Fraction(2) ** (so - s),
                                                        str(k["coeff_rounding"])) <= top or s == 31)
    c = rnd(Fraction(offset) * Fraction(2) ** (so - sc), str(k["coeff_rounding"])) * 2**sc
    dr, mode = int(k["double_round"]), str(k["rounding"])
    out_codes = []
    for xs in zip(*(cd.reshape(-1).tolist() for cd in codes), strict=True):
        total = c + sum(rnd(Fraction(a * x) / Fraction(2) ** s, str(k["operand_rounding"]))
                        for (a, s), x in zip(coefs, xs, strict=True))
        if 0 < dr < so:
            v = rnd(Fraction(rnd(Fraction(total, 2**dr), mode), 2 ** (so - dr)), mode)
        else:
            v = rnd(Fraction(total, 2**so), mode)
        out_codes.append(min(max(v, -128), 127))
    return np.asarray(out_codes, dtype=np.int64)


BASE: dict[str, object] = {
    "coeff_bits": 16, "shift_o": 14, "coeff_overflow": "wrap", "coeff_shift": "per_operand",
    "coeff_rounding": "half_away", "operand_rounding": "floor", "rounding": "half_up", "double_round": 0,
}
VARIANTS = [
    {"coeff_overflow": "lower"},
    {"coeff_overflow": "lower_uncompensated"},
    {"coeff_shift": "shared"},
    {"coeff_shift": "shared", "coeff_overflow": "lower"},
    {"coeff_shift": "shared", "coeff_overflow": "lower_uncompensated", "coeff_bits": 12, "shift_o": 10},
    {"coeff_rounding": "truncate"},
    {"coeff_rounding": "floor"},
    {"coeff_rounding": "half_even", "coeff_overflow": "saturate"},
    {"double_round": 3},
    {"double_round": 5, "rounding": "half_even", "operand_rounding": "truncate"},
    {"coeff_overflow": "lower", "double_round": 2, "coeff_rounding": "floor", "rounding": "truncate"},
]
SCALES = [  # (a, b, out): ratios below 1, near 1, at and above 2, with zero points
    ((0.0313726, 2), (0.0162219, 1), (0.0153037, -128)),  # the TCN's block0_add: 2.05, 1.06
    ((0.02, -7), (0.013, 30), (0.031, 5)),
    ((0.11, 12), (0.021, -40), (0.03, -3)),  # 3.67, 0.7
    ((0.05, 0), (0.025, 0), (0.025, 0)),  # exactly 2 and 1
]
RNG = np.random.default_rng(7)
SAMPLE = RNG.integers(-128, 128, size=(2, 3000))


def _engine(model: object, feeds: dict[str, np.ndarray], knobs: dict[str, object]) -> np.ndarray:
    profile = get_profile("arith16-wrap").with_overrides(
        {f"{c}.{n}": str(v) for c in ("eltwise", "concat") for n, v in knobs.items()})
    out = EngineBackend(profile).open(model_from_proto(model)).run(feeds)  # type: ignore[arg-type]
    return np.asarray(out["q"]).astype(np.int64).reshape(-1)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_affine_add_matches_the_rational_formula(variant: dict[str, object], op: str) -> None:
    knobs = {**BASE, **variant}
    a, b = SAMPLE[0].reshape(1, -1), SAMPLE[1].reshape(1, -1)
    for qa, qb, qo in SCALES:
        model = binary_model(op, qa, qb, qo, k=a.shape[1])
        got = _engine(model, {"a": a.astype(np.int8), "b": b.astype(np.int8)}, knobs)
        want = oracle([(qa, 1), (qb, -1 if op == "Sub" else 1)], qo, [a, b], knobs)
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {qa} {qb} {qo} {variant}")


@pytest.mark.parametrize("variant", VARIANTS[:6], ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_affine_concat_requantization_matches_the_rational_formula(variant: dict[str, object]) -> None:
    knobs = {**BASE, **variant}
    x = np.arange(-128, 128).reshape(1, -1)
    for qa, qb, qo in SCALES:
        model = concat_model([qa, qb], qo, k=256)
        got = _engine(model, {"x0": x.astype(np.int8), "x1": x.astype(np.int8)}, knobs)
        want = np.concatenate([oracle([(q, 1)], qo, [x], knobs) for q in (qa, qb)])
        np.testing.assert_array_equal(got, want, err_msg=f"{qa} {qb} {qo} {variant}")


def test_lower_precision_is_compensated_or_not() -> None:
    """Compensated: within one LSB of the exact sum; uncompensated: the operand counts half."""
    a, b = SAMPLE[0].reshape(1, -1), SAMPLE[1].reshape(1, -1)
    qa, qb, qo = (0.05, 0), (0.01, 0), (0.02, 0)  # ratio 2.5 needs 2 integer bits
    model = binary_model("Add", qa, qb, qo, k=a.shape[1])
    feeds = {"a": a.astype(np.int8), "b": b.astype(np.int8)}
    exact = np.clip(np.rint(2.5 * a + 0.5 * b), -128, 127).reshape(-1)
    fine = _engine(model, feeds, {**BASE, "coeff_overflow": "lower"})
    assert np.abs(fine - exact).max() <= 1
    halved = _engine(model, feeds, {**BASE, "coeff_overflow": "lower_uncompensated"})
    assert np.abs(halved - np.clip(np.floor(1.25 * a + 0.5 * b + 0.5), -128, 127).reshape(-1)).max() <= 1


@pytest.mark.parametrize("k", [1, 4, 9])
def test_fixed_point_rescale_each_rounds_twice(k: int) -> None:
    """rescale_each with 12-bit fixed multipliers: round(round(v / 2**k) / 2**(right - k))."""
    qa, qb, qo = (0.0313726, 2), (0.0162219, 1), (0.0153037, -128)
    a, b = SAMPLE[0].reshape(1, -1), SAMPLE[1].reshape(1, -1)
    model = binary_model("Add", qa, qb, qo, k=a.shape[1])
    over = {"eltwise.scale": "fixed", "eltwise.multiplier_bits": "12", "eltwise.rounding": "half_up",
            "eltwise.double_round": str(k)}
    got = np.asarray(EngineBackend(get_profile("exact").with_overrides(over)).open(model_from_proto(model)).run(
        {"a": a.astype(np.int8), "b": b.astype(np.int8)})["q"]).astype(np.int64).reshape(-1)
    ra, rb = (float(np.float32(q[0])) / float(np.float32(qo[0])) for q in (qa, qb))
    e = math.frexp(max(ra, rb))[1]  # quantize_multiplier's exponent of the larger ratio
    right = 12 - e
    ma, mb = round(ra * 2.0**right), round(rb * 2.0**right)
    want = []
    for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist(), strict=True):
        v = (x - qa[1]) * ma + (y - qb[1]) * mb
        r = rnd(Fraction(rnd(Fraction(v, 2**k), "half_up"), 2 ** (right - k)), "half_up")
        want.append(min(max(r + qo[1], -128), 127))
    np.testing.assert_array_equal(got, np.asarray(want))
