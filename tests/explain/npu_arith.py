"""Integer arithmetic of the simulated NPUs, written from the formulas (not from qprobe's engine).

* ``affine_unit``: the affine eltwise unit of st-edge-ai.md section 3.4 on raw codes,
  ``sat(((A*x) >> sa) + ((B*y) >> sb) + (C << sc) + 2**(so-1)) >> so)``, with 16-bit
  coefficients derived from the scale ratios in double and rounded half away from zero,
  zero points folded into C; what a coefficient that does not fit does is a parameter, and
  the output shift rounds half up or half to even.
* ``ort_requant``: onnxruntime's QLinearConv requantization in float32
  (arithmetic.md section 2.3), and ``fixed_requant``: a fixed-point multiplier of ``bits``
  bits from frexp, rounded half up.
* ``conv_acc``: the exact int64 accumulator of a Conv on codes (pads, strides, dilations).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def half_away(v: Fraction) -> int:
    f = math.floor(abs(v) + Fraction(1, 2))
    return f if v >= 0 else -f


def coefficient(ratio: float, bits: int, shift_o: int, overflow: str) -> tuple[int, int]:
    """(A, right shift of A*x); overflow: saturate | wrap | lower_uncompensated."""
    top = 2 ** (bits - 1) - 1

    def at(e: int) -> int:
        return half_away(Fraction(ratio) * Fraction(2) ** e)

    if abs(at(shift_o)) <= top:
        sa = 0
        while sa < 31 and abs(at(shift_o + sa + 1)) <= top:
            sa += 1
        return at(shift_o + sa), sa
    if overflow == "saturate":
        return (top if ratio > 0 else -top - 1), 0
    if overflow == "wrap":
        return (at(shift_o) + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1), 0
    lost = next(k for k in range(1, 40) if abs(at(shift_o - k)) <= top)
    return at(shift_o - lost), 0  # fewer fractional bits, never compensated


def affine_unit(ratios: list[float], offset: float, codes: list[np.ndarray], lo: int, hi: int,
                overflow: str, bits: int = 16, shift_o: int = 14, rounding: str = "half_up") -> np.ndarray:
    top = 2 ** (bits - 1) - 1
    sc = next(s for s in range(32) if abs(half_away(Fraction(offset) * Fraction(2) ** (shift_o - s))) <= top)
    total = np.asarray(half_away(Fraction(offset) * Fraction(2) ** (shift_o - sc)) << sc, dtype=np.int64)
    for r, x in zip(ratios, codes, strict=True):
        a, sa = coefficient(r, bits, shift_o, overflow)
        total = total + ((a * x.astype(np.int64)) >> sa)
    q = total >> shift_o
    rem, half = total - (q << shift_o), 1 << (shift_o - 1)
    up = rem >= half if rounding == "half_up" else (rem > half) | ((rem == half) & (q % 2 == 1))
    return np.clip(q + up, lo, hi)


def conv_acc(x: np.ndarray, w: np.ndarray, zx: int, pads: list[int], strides: list[int],
             dilations: list[int]) -> np.ndarray:
    """sum (x - zx) * w over the window, int64, for NC(spatial) layouts and group 1 (padding reads zx)."""
    nd = w.ndim - 2
    xc = x.astype(np.int64) - zx
    xc = np.pad(xc, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    out_shape = [(xc.shape[2 + i] - dilations[i] * (w.shape[2 + i] - 1) - 1) // strides[i] + 1 for i in range(nd)]
    acc = np.zeros((x.shape[0], w.shape[0], *out_shape), dtype=np.int64)
    for tap in np.ndindex(*w.shape[2:]):
        idx = tuple(slice(tap[i] * dilations[i], tap[i] * dilations[i] + strides[i] * (out_shape[i] - 1) + 1,
                          strides[i]) for i in range(nd))
        window = xc[(slice(None), slice(None), *idx)]
        acc += np.einsum("nc...,mc->nm...", window, w[(slice(None), slice(None), *tap)].astype(np.int64))
    return acc


def ort_requant(acc: np.ndarray, sx: float, sw: np.ndarray, sy: float, zy: int, lo: int, hi: int) -> np.ndarray:
    m = (np.float32(sx) * sw.astype(np.float32)).astype(np.float32) / np.float32(sy)
    shape = [1, -1] + [1] * (acc.ndim - 2)
    v = (acc.astype(np.float32) * m.astype(np.float32).reshape(shape)).astype(np.float32)
    return np.clip(np.rint(v).astype(np.int64) + zy, lo, hi)


def fixed_requant(acc: np.ndarray, m: np.ndarray, bits: int, zy: int, lo: int, hi: int) -> np.ndarray:
    """acc * M / 2**(bits - e), rounded half up, with m = M * 2**(e - bits), M in [2**(bits-1), 2**bits)."""
    out = np.empty(acc.shape, dtype=np.int64)
    for c in range(acc.shape[1]):
        frac, e = math.frexp(float(m[c]))
        mm = half_away(Fraction(frac) * 2**bits)
        if mm == 2**bits:
            mm, e = mm // 2, e + 1
        right = bits - e
        out[:, c] = (acc[:, c] * mm + (1 << (right - 1))) >> right
    return np.clip(out + zy, lo, hi)
