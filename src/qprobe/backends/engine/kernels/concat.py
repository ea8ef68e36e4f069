"""Concat (QDQ) and QLinearConcat, and the requantization of codes between two quantizations.

An input whose scale, zero point and type equal the output's is copied; any other goes
through ``code_requantizer`` (class ``concat``), built as a lookup table over every
input code (8/16-bit) so that the cost is one gather per element. Knobs read by
``code_requantizer``: ``structure`` (``affine``: the affine unit of ``affine.py`` with one
operand), else ``scale``: ``float32`` is onnxruntime's QLinearConcat / QuantizeLinear
formula ``sat(RNE(fl32(fl32(sx*fl32(q - zx)) / sy)) + zy)`` (zero point before rounding
when ``zero_point = before``); ``double``/``exact``/``fixed``/``pow2`` go through the
requantizer with ``acc = q - zx`` and multiplier ``sx/sy``; plus ``rounding``,
``zero_point`` and the affine knobs (``coeff_bits``, ``coeff_overflow``, ``coeff_shift``,
``coeff_rounding``, ``shift_o``, ``operand_rounding``, ``double_round``,
``intermediate_bits``: one operand, so ``coeff_shift`` only changes its precision).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.affine import affine_unary
from qprobe.backends.engine.kernels.base import CodeTable, Kernel, OpSpec, QType, require_per_tensor
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.requant import Ratio, Requantizer


def code_requantizer(qin: QType, qout: QType, num: Numerics) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping codes of ``qin`` to codes of ``qout`` (identity when they are the same)."""
    if qin.same_as(qout):
        return lambda x: x
    codes = np.arange(qin.qmin, qin.qmax + 1, dtype=np.int64)
    table = np.clip(_requantize(codes, qin, qout, num), qout.qmin, qout.qmax)
    return CodeTable(table.astype(np.dtype(qout.dtype)), qin.dtype, qin.qmin)


def _requantize(codes: np.ndarray, qin: QType, qout: QType, num: Numerics) -> np.ndarray:
    if num.structure == "affine":
        return affine_unary(qin, qout, num)(codes)
    if num.scale == "float32":
        real = (qin.s * (codes - qin.z).astype(np.float32)).astype(np.float32)
        v = (real / qout.s).astype(np.float32)
        if num.zero_point == "before":
            return nx.round_float((v + np.float32(qout.z)).astype(np.float32), num.rounding).astype(np.int64)
        return nx.round_float(np.clip(v, -(2.0**40), 2.0**40), num.rounding).astype(np.int64) + qout.z
    requant = Requantizer(num, Ratio.of([qin.s], [qout.s]), qout.zero_point, qout.qmin, qout.qmax)
    return requant(codes - qin.z)


def build_concat_int(spec: OpSpec) -> Kernel:
    require_per_tensor(spec, *range(len(spec.inputs)))
    qout = spec.out_q
    maps = [code_requantizer(spec.q(i), qout, spec.numerics) for i in range(len(spec.inputs))]
    axis = int(spec.attr("axis", 0))
    dt = np.dtype(qout.dtype)

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        parts = [np.asarray(f(a)).astype(dt) for f, a in zip(maps, args, strict=True) if a is not None]
        return [np.concatenate(parts, axis=axis)]

    return run


def build_concat_float(spec: OpSpec) -> Kernel:
    axis = int(spec.attr("axis", 0))

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return [np.concatenate([a for a in args if a is not None], axis=axis)]

    return run
