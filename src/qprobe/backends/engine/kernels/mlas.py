"""float32 elementwise functions computed exactly as onnxruntime's x86-64 CPU kernels do.

Sigmoid and Tanh use the rational approximations of MLAS's FMA3 kernels (the Eigen
coefficients, clamped input, one fused multiply-add per Horner step, then a division);
HardSwish is ``x * clip(fl32(x * fl32(1/6)) + 0.5, 0, 1)`` without contraction; Erf is
MLAS's faithfully rounded erff (an odd polynomial below 0.921875, ``1 - exp(-p(|x|))``
above it with MLAS's own exp polynomial, its argument clamped at -88.376, and a power-of-two
scaling; the x86-64 kernel does not clamp |x| at 3.725 as the portable one does); Exp is
MLAS's expf (range reduction by ln 2 in two parts, a degree-6 polynomial, a two-factor
power-of-two reconstruction that covers exponents -150..128).
Each was checked bit for bit against onnxruntime 1.32 on 10**6 random inputs
(tests/engine/test_float_functions.py). ``float64`` variants are the mathematical
functions, used by profiles that do not model onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qprobe.backends.engine.numerics import fma32

F32 = np.float32


def _c(*values: float) -> tuple[np.float32, ...]:
    return tuple(F32(v) for v in values)


_LOGISTIC_RANGE = _c(-18.0, 18.0)
_LOGISTIC_P = _c(4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
                 2.48287947061529e-01)
_LOGISTIC_Q = _c(6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
                 1.16817656904453e-01, 9.93151921023180e-01)
_TANH_RANGE = _c(-9.0, 9.0)
_TANH_P = _c(-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
             1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = _c(1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


_ERF_SPLIT, _EXP_LOW = _c(0.921875, -88.3762626647949)
_ERF_SMALL = _c(-5.99104969e-4, 4.99339588e-3, -2.67667342e-2, 1.12818025e-1, -3.76124859e-1, 1.28379151e-1)
_ERF_BIG = _c(1.72948930e-5, -3.83208680e-4, 3.88393435e-3, -2.42545605e-2, 1.06777847e-1, 6.34846687e-1,
              1.28717512e-1)
_EXP_LOG2E, _EXP_LN2_HI, _EXP_LN2_LO, _EXP_ROUNDER = _c(1.44269504088896341, -6.93145752e-1, -1.42860677e-6,
                                                        1.25829120e7)
_EXP_POLY = _c(1.38319808e-3, 8.37550033e-3, 4.16689515e-2, 1.66664466e-1, 4.99999851e-1, 1.0, 1.0)


def erf32(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return _erf32(np.asarray(x, F32))


def _erf32(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    small = fma32(_horner((a * a).astype(F32), _ERF_SMALL), v, v)
    a = np.minimum(a, F32(16))  # beyond ~10 the exp argument is clamped anyway; keeps fma32 finite
    p: np.ndarray = np.full_like(a, _ERF_BIG[0])
    for c in _ERF_BIG[1:]:
        p = fma32(p, a, c)
    neg = np.maximum(-fma32(p, a, a), _EXP_LOW)
    r = (fma32(_EXP_LOG2E, neg, _EXP_ROUNDER) - _EXP_ROUNDER).astype(F32)  # round(neg / ln 2)
    f = fma32(r, _EXP_LN2_LO, fma32(r, _EXP_LN2_HI, neg))
    e: np.ndarray = np.full_like(f, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        e = fma32(e, f, c)
    big = (F32(1) - np.ldexp(e, r.astype(np.int32)).astype(F32)).astype(F32)
    big = np.where(v < 0, -big, big)
    return np.where(np.abs(v) > _ERF_SPLIT, big, small).astype(F32)


_EXP32_RANGE = _c(-103.9720840454, 88.7762626647950)
_EXP32_LN2 = _c(-6.93145752e-1, -1.42860677e-6)
_EXP32_POLY = _c(*(float.fromhex(h) for h in ("0x1.694p-10", "0x1.125edcp-7", "0x1.555b5ap-5", "0x1.55545p-3",
                                              "0x1.fffff6p-2", "0x1p+0")))
_EXP32_MIN_EXP, _EXP32_ONE = np.int64(np.int32(-1056964608)), np.int64(0x3F800000)  # bits of -2**-126... and 1.0


def _as_f32(bits: np.ndarray) -> np.ndarray:
    return ((bits + 2**31) % 2**32 - 2**31).astype(np.int32).view(F32)


def exp32(x: np.ndarray) -> np.ndarray:
    """MLAS's expf: ``2**m * p(r)`` with the scale split in two factors (exponents -150..128)."""
    v = np.clip(np.asarray(x, F32), _EXP32_RANGE[0], _EXP32_RANGE[1]).astype(F32)
    biased = fma32(v, _EXP_LOG2E, _EXP_ROUNDER)
    m = (biased - _EXP_ROUNDER).astype(F32)
    r = fma32(m, _EXP32_LN2[1], fma32(m, _EXP32_LN2[0], v))
    over = (biased.view(np.int32).astype(np.int64) << 23) % 2**32
    over = np.where(over >= 2**31, over - 2**32, over)
    normal = np.clip(over, _EXP32_MIN_EXP, _EXP32_ONE)
    over_f, normal_f = _as_f32(over - normal + _EXP32_ONE), _as_f32(normal + _EXP32_ONE)
    p: np.ndarray = np.full_like(r, _EXP32_POLY[0])
    for c in _EXP32_POLY[1:]:
        p = fma32(p, r, c)
    p = fma32(p, (r * over_f).astype(F32), over_f)
    return (p * normal_f).astype(F32)


def _horner(x2: np.ndarray, coeffs: tuple[np.float32, ...]) -> np.ndarray:
    acc = fma32(x2, coeffs[0], coeffs[1])
    for c in coeffs[2:]:
        acc = fma32(acc, x2, c)
    return acc


def _rational(x: np.ndarray, rng: tuple[np.float32, ...], p: tuple[np.float32, ...],
              q: tuple[np.float32, ...]) -> np.ndarray:
    v = np.clip(np.asarray(x, F32), rng[0], rng[1]).astype(F32)
    v2 = (v * v).astype(F32)
    num = (_horner(v2, p) * v).astype(F32)
    return (num / _horner(v2, q)).astype(F32)


def sigmoid32(x: np.ndarray) -> np.ndarray:
    return np.clip((_rational(x, _LOGISTIC_RANGE, _LOGISTIC_P, _LOGISTIC_Q) + F32(0.5)).astype(F32), 0, 1).astype(F32)


def tanh32(x: np.ndarray) -> np.ndarray:
    return _rational(x, _TANH_RANGE, _TANH_P, _TANH_Q)


def hardswish32(x: np.ndarray) -> np.ndarray:
    v = np.asarray(x, F32)
    gate = np.clip((v * F32(1.0 / 6.0)).astype(F32) + F32(0.5), 0, 1).astype(F32)
    return (v * gate).astype(F32)


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def hardswish64(x: np.ndarray) -> np.ndarray:
    v = np.asarray(x, np.float64)
    return v * np.clip(v / 6.0 + 0.5, 0, 1)


FLOAT32: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Sigmoid": sigmoid32, "Tanh": tanh32, "HardSwish": hardswish32, "Erf": erf32, "Exp": exp32,
}
FLOAT64: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Sigmoid": sigmoid64, "Tanh": lambda x: np.tanh(np.asarray(x, np.float64)), "HardSwish": hardswish64,
}
