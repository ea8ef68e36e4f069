"""Elementwise math of float islands: Neg, Abs, Sqrt, Reciprocal, Floor, Ceil, Exp, Log,
Erf and Pow. No integer form: inside a QDQ graph they run between a DequantizeLinear and a
QuantizeLinear, as onnxruntime runs them (it fuses none).

Float32 results as onnxruntime's CPU kernels compute them: Neg, Abs, Sqrt, Reciprocal,
Floor and Ceil are exact IEEE operations; Exp and Erf are MLAS's approximations
(``mlas.exp32``, ``mlas.erf32``), bit-exact; Pow with a scalar exponent 2 or 3 is
``x*x`` / ``(x*x)*x`` as onnxruntime special-cases it, other exponents numpy's powf (at
most 1 ulp from onnxruntime's); Log is numpy's logf (onnxruntime uses Eigen's: a few ulp
apart). Integer inputs (shape arithmetic) keep their dtype for Neg and Abs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qprobe.backends.engine.kernels import mlas
from qprobe.backends.engine.kernels.base import Kernel, OpSpec

F32 = np.float32

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal, "Floor": np.floor,
    "Ceil": np.ceil, "Log": np.log, "Exp": mlas.exp32, "Erf": mlas.erf32,
}


def build_unary(spec: OpSpec) -> Kernel:
    fn = _UNARY[spec.op_type]
    keeps_ints = spec.op_type in ("Neg", "Abs")

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0])
        if keeps_ints and x.dtype.kind in "iu":
            return [fn(x)]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [np.asarray(fn(x.astype(F32, copy=False)), F32)]

    return run


def _power(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    if e.size == 1:
        k = float(e.reshape(-1)[0])
        if k == 2.0:
            return (x * x).astype(F32)
        if k == 3.0:
            return ((x * x).astype(F32) * x).astype(F32)
    return np.power(x, e.astype(F32)).astype(F32)


def build_pow(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x, e = np.asarray(args[0]), np.asarray(args[1])
        if x.dtype.kind in "iu":
            return [np.power(x, e.astype(x.dtype))]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [_power(x.astype(F32, copy=False), e)]

    return run


FLOAT_MATH = {**dict.fromkeys(_UNARY, build_unary), "Pow": build_pow}
