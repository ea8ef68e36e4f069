"""An affine eltwise unit with narrow coefficients (``structure = affine``).

    out = sat(round_shift((A*x >> sa) + (B*y >> sb) + (C << sc), shift_o))

on raw codes ``x``, ``y``. This models an NPU arithmetic unit as reconstructed from
compiled artifacts of the STM32N6 Neural-ART ARITH unit (st-edge-ai.md section 3.4):
a HYPOTHESIS about that hardware, not a vendor fact. The compiler-side derivation
modelled here:

* ``A = round(ra * 2**(shift_o + sa))`` with ``ra = sx/so`` (double) and ``sa >= 0`` the
  largest shift for which ``|A|`` fits in a signed ``coeff_bits`` integer; when even
  ``sa = 0`` does not fit, ``coeff_overflow`` decides: ``saturate`` to the largest
  coefficient, or ``wrap`` to ``coeff_bits`` bits (two's complement). Same for ``B``.
* ``C * 2**sc / 2**shift_o = zo - ra*zx - rb*zy`` (both zero points folded into C), with
  ``sc >= 0`` the smallest shift for which ``C`` fits.

Knobs read: ``coeff_bits``, ``coeff_overflow``, ``shift_o``, ``operand_rounding`` (the
``>> sa`` shifts), ``rounding`` (the ``>> shift_o``), ``intermediate_bits``.
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
    shift: int
    overflowed: bool


def operand_coefficient(ratio: float, num: Numerics) -> Coefficient:
    """Largest-precision ``(A, sa)`` for ``A / 2**(shift_o + sa) ~= ratio``."""
    top = (1 << (num.coeff_bits - 1)) - 1
    if ratio == 0:
        return Coefficient(0, 0, False)
    shift = 0
    while abs(round(ratio * 2.0 ** (num.shift_o + shift + 1))) <= top and shift < 31:
        shift += 1
    raw = int(nx.round_float(ratio * 2.0 ** (num.shift_o + shift), "half_away"))
    if abs(raw) <= top:
        return Coefficient(raw, shift, False)
    if num.coeff_overflow == "saturate":
        return Coefficient(top if raw > 0 else -top - 1, 0, True)
    return Coefficient(int(nx.wrap(raw, num.coeff_bits)), 0, True)


def offset_coefficient(offset: float, num: Numerics) -> Coefficient:
    """Smallest shift ``sc`` with ``C = round(offset * 2**(shift_o - sc))`` in range."""
    top = (1 << (num.coeff_bits - 1)) - 1
    shift = 0
    while True:
        c = int(nx.round_float(offset * 2.0 ** (num.shift_o - shift), "half_away"))
        if -top - 1 <= c <= top or shift >= 31:
            return Coefficient(c, shift, False)
        shift += 1


@dataclass(frozen=True)
class AffineUnit:
    terms: tuple[Coefficient, ...]
    offset: Coefficient
    num: Numerics

    def __call__(self, *codes: np.ndarray) -> np.ndarray:
        num = self.num
        total = np.asarray(self.offset.value << self.offset.shift, dtype=np.int64)
        for coef, x in zip(self.terms, codes, strict=True):
            t = nx.round_shift(coef.value * np.asarray(x, dtype=np.int64), coef.shift, num.operand_rounding)
            total = total + _sat(t, num)
            total = _sat(total, num)
        return nx.round_shift(total, num.shift_o, num.rounding)


def _sat(v: np.ndarray, num: Numerics) -> np.ndarray:
    return nx.saturate(v, num.intermediate_bits) if num.intermediate_bits else v


def make_affine(inputs: list[tuple[QType, float]], out: QType, num: Numerics) -> AffineUnit:
    """The unit computing ``sum(sign_i * s_i/so * (x_i - z_i)) + zo`` for per-tensor operands."""
    ratios = [sign * float(q.s) / float(out.s) for q, sign in inputs]
    offset = out.z - sum(r * q.z for r, (q, _s) in zip(ratios, inputs, strict=True))
    return AffineUnit(tuple(operand_coefficient(r, num) for r in ratios), offset_coefficient(offset, num), num)


def affine_binary(qa: QType, qb: QType, qc: QType, sign: int, num: Numerics) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    unit = make_affine([(qa, 1.0), (qb, float(sign))], qc, num)
    return lambda a, b: unit(*np.broadcast_arrays(a, b))


def affine_unary(qin: QType, qout: QType, num: Numerics) -> Callable[[np.ndarray], np.ndarray]:
    unit = make_affine([(qin, 1.0)], qout, num)
    return lambda x: unit(x)
