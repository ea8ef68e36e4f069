"""float32 elementwise functions computed exactly as onnxruntime's x86-64 CPU kernels do.

Sigmoid and Tanh use the rational approximations of MLAS's FMA3 kernels (the Eigen
coefficients, clamped input, one fused multiply-add per Horner step, then a division);
HardSwish is ``x * clip(fl32(x * fl32(1/6)) + 0.5, 0, 1)`` without contraction. Each
was checked bit for bit against onnxruntime 1.32 on 10**6 random inputs
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
    "Sigmoid": sigmoid32, "Tanh": tanh32, "HardSwish": hardswish32,
}
FLOAT64: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Sigmoid": sigmoid64, "Tanh": lambda x: np.tanh(np.asarray(x, np.float64)), "HardSwish": hardswish64,
}
