"""An affine eltwise unit with narrow coefficients (``structure = affine``).

    out = sat(round_shift((A*x >> sa) + (B*y >> sb) + (C << sc), so))

on raw codes ``x``, ``y``. This models an NPU arithmetic unit as reconstructed from
compiled artifacts of the STM32N6 Neural-ART ARITH unit (docs/neural-art.md):
a HYPOTHESIS about that hardware, not a vendor fact. The compiler-side derivation
modelled here (``R`` is the ``coeff_rounding`` of a real value to an integer):

* ``A = R(ra * 2**(so + sa))`` with ``ra = sx/so`` (double). ``coeff_shift = per_operand``:
  ``sa >= 0`` is the largest shift for which ``|A|`` fits in a signed ``coeff_bits``
  integer; ``shared``: ``sa = 0`` for every operand (one exponent for all coefficients).
  When even ``sa = 0`` does not fit, ``coeff_overflow`` decides: ``saturate`` to the
  largest coefficient; ``wrap`` to ``coeff_bits`` bits (two's complement); ``lower``: the
  coefficient is taken with ``k`` fewer fractional bits (the smallest ``k`` that fits)
  and compensated, by a left shift of the product (``sa = -k``) or, with ``shared``, by
  lowering the unit's output shift ``so`` for every coefficient; ``lower_uncompensated``:
  the same coefficient with ``sa = 0``, so the operand counts ``ratio / 2**k``. Same for ``B``.
* ``C * 2**sc / 2**so = zo - ra*zx - rb*zy`` (both zero points folded into C), with
  ``sc >= 0`` the smallest shift for which ``C`` fits.
* ``so = shift_o`` unless ``shared`` + ``lower`` lowered it. ``double_round = k > 0``
  rounds the output shift in two steps (the lowest ``k`` bits first, then the rest).

Knobs read: ``coeff_bits``, ``coeff_overflow``, ``coeff_shift``, ``coeff_rounding``,
``shift_o``, ``operand_rounding`` (the ``>> sa`` shifts), ``rounding`` and
``double_round`` (the ``>> so``), ``intermediate_bits``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.base import QType
from qprobe.backends.engine.profiles import Numerics


@dataclass(frozen=True)
class Coefficient:
    value: int
    shift: int  # right shift of value * x; negative: a left shift
    overflowed: bool


def _real_to_int(v: float, mode: str) -> int:
    return int(nx.round_float(v, mode))


def _top(num: Numerics) -> int:
    return (1 << (num.coeff_bits - 1)) - 1


def operand_coefficient(ratio: float, num: Numerics, shift_o: int | None = None) -> Coefficient:
    """``(A, sa)`` for ``A / 2**(so + sa) ~= ratio`` (``so``: ``shift_o`` unless given)."""
    so = num.shift_o if shift_o is None else shift_o
    top = _top(num)
    if ratio == 0:
        return Coefficient(0, 0, False)

    def coef(exponent: int) -> int:
        return _real_to_int(ratio * 2.0**exponent, num.coeff_rounding)

    if abs(coef(so)) <= top:
        shift = 0
        while num.coeff_shift == "per_operand" and shift < 31 and abs(coef(so + shift + 1)) <= top:
            shift += 1
        return Coefficient(coef(so + shift), shift, False)
    raw = coef(so)
    if num.coeff_overflow == "saturate":
        return Coefficient(top if raw > 0 else -top - 1, 0, True)
    if num.coeff_overflow == "wrap":
        return Coefficient(int(nx.wrap(raw, num.coeff_bits)), 0, True)
    k = 1
    while abs(coef(so - k)) > top:
        k += 1
    return Coefficient(coef(so - k), -k if num.coeff_overflow == "lower" else 0, True)


def offset_coefficient(offset: float, num: Numerics, shift_o: int | None = None) -> Coefficient:
    """Smallest shift ``sc`` with ``C = R(offset * 2**(so - sc))`` in range."""
    so = num.shift_o if shift_o is None else shift_o
    top = _top(num)
    shift = 0
    while True:
        c = _real_to_int(offset * 2.0 ** (so - shift), num.coeff_rounding)
        if -top - 1 <= c <= top or shift >= 31:
            return Coefficient(c, shift, False)
        shift += 1


def shared_output_shift(ratios: list[float], num: Numerics) -> int:
    """The unit's output shift: ``shift_o``, lowered until every coefficient fits for
    ``coeff_shift = shared`` with ``coeff_overflow = lower`` (the compensated form)."""
    so = num.shift_o
    if num.coeff_shift != "shared" or num.coeff_overflow != "lower":
        return so
    top = _top(num)
    while so > 0 and any(abs(_real_to_int(r * 2.0**so, num.coeff_rounding)) > top for r in ratios):
        so -= 1
    return so


def round_output(v: np.ndarray, shift: int, num: Numerics) -> np.ndarray:
    """``v / 2**shift`` rounded by ``rounding``, in two steps when ``double_round`` is set."""
    k = num.double_round
    if 0 < k < shift:
        return nx.round_shift(nx.round_shift(v, k, num.rounding), shift - k, num.rounding)
    return nx.round_shift(v, shift, num.rounding)


@dataclass(frozen=True)
class AffineUnit:
    terms: tuple[Coefficient, ...]
    offset: Coefficient
    num: Numerics
    shift_o: int

    def __call__(self, *codes: np.ndarray) -> np.ndarray:
        num = self.num
        total = np.asarray(self.offset.value << self.offset.shift, dtype=np.int64)
        for coef, x in zip(self.terms, codes, strict=True):
            t = nx.round_shift(coef.value * np.asarray(x, dtype=np.int64), coef.shift, num.operand_rounding)
            total = total + _sat(t, num)
            total = _sat(total, num)
        return round_output(total, self.shift_o, num)


def _sat(v: np.ndarray, num: Numerics) -> np.ndarray:
    return nx.saturate(v, num.intermediate_bits) if num.intermediate_bits else v


def make_affine(inputs: list[tuple[QType, float]], out: QType, num: Numerics) -> AffineUnit:
    """The unit computing ``sum(sign_i * s_i/so * (x_i - z_i)) + zo`` for per-tensor operands."""
    ratios = [sign * float(q.s) / float(out.s) for q, sign in inputs]
    offset = out.z - sum(r * q.z for r, (q, _s) in zip(ratios, inputs, strict=True))
    so = shared_output_shift(ratios, num)
    terms = tuple(operand_coefficient(r, num, so) for r in ratios)
    return AffineUnit(terms, offset_coefficient(offset, num, so), num, so)


def affine_binary(qa: QType, qb: QType, qc: QType, sign: int,
                  num: Numerics) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    unit = make_affine([(qa, 1.0), (qb, float(sign))], qc, num)
    return lambda a, b: unit(*np.broadcast_arrays(a, b))


def affine_unary(qin: QType, qout: QType, num: Numerics) -> Callable[[np.ndarray], np.ndarray]:
    unit = make_affine([(qin, 1.0)], qout, num)
    return lambda x: unit(x)
