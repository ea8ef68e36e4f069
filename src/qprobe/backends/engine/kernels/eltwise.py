"""Eltwise family: Add and Sub (class ``eltwise``), Mul (class ``mul``), QLinearAdd/QLinearMul.

Add/Sub read ``structure`` and then:

* ``rescale_each``: ``v = ra*(a - za) +- rb*(b - zb)`` with ``ra = sa/sc``, ``rb = sb/sc``,
  computed per ``scale``: ``float32`` is onnxruntime's x86 QLinearAdd
  (``ra = fl32(sa/sc)``; zero point before rounding:
  ``RNE(fma32(a, ra, fma32(b, rb, fl32(zc - fma32(ra, za, fl32(rb*zb))))))`` on raw codes;
  after: ``RNE(fma32(a - za, ra, fl32((b - zb)*rb))) + zc``); ``double`` in float64;
  ``exact`` as a rational; ``fixed``/``pow2`` with both multipliers on a common shift
  (onnxruntime's ARM NEON form for 22 bits). Also reads ``rounding``, ``zero_point``, and
  for ``fixed``/``pow2`` ``double_round`` (the final shift rounded in two steps).
* ``tflite``: TFLite ADD/SUB: ``(q - z) << pre_shift8|16``, each rescaled by
  ``s/(2 max(sa, sb))``, summed, rescaled by ``2 max/(2**pre_shift * sc)``; each step is
  ``multiplier_bits``-bit fixed point with ``rounding`` (``tflite_double``: SRDHM + RDBPOT).
* ``ethos_u``: as ``tflite``, but only the smaller-scale operand is multiplied; the other
  is shifted by ``pre_shift - 1`` (the exact 0.5 factor folded away, as vela does).
* ``affine``: see ``affine.py``.

``intermediate_bits`` (> 0) saturates the rescaled operands and their sum (not for float
structures). Mul reads the requantizer knobs with ``acc = (a - za)(b - zb)`` and
multiplier ``sa*sb/sc`` (float32: onnxruntime's ``fl32(fl32(sa*sb)/sc)``, zero point
before rounding as its QLinearMul does when ``zero_point = before``).

With two 8-bit inputs the formula is evaluated once on all 65 536 input pairs and the
kernel is a table lookup (the same numbers, much faster).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels.affine import affine_binary, round_output
from qprobe.backends.engine.kernels.base import Kernel, OpSpec, QType, centered, require_per_tensor, take_in_layout
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.requant import Ratio, Requantizer, fixed_point
from qprobe.errors import ProfileError

Binary = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _pair(args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    a, b = args[0], args[1]
    assert a is not None and b is not None
    return np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)


def build_add_int(spec: OpSpec) -> Kernel:
    """Quantized Add/Sub (QDQ group or QLinearAdd)."""
    require_per_tensor(spec, 0, 1)
    return _binary_kernel(add_function(spec), spec.q(0), spec.q(1), spec.out_q)


def add_function(spec: OpSpec) -> Binary:
    """The Add/Sub formula on int64 codes, clamped to the output type, before tabulation
    (what the kernel evaluates on every input pair; explain evaluates it on samples)."""
    qa, qb, qc, num = spec.q(0), spec.q(1), spec.out_q, spec.numerics
    sign = -1 if spec.op_type == "Sub" else 1
    structure = num.structure
    if structure == "affine":
        fn = affine_binary(qa, qb, qc, sign, num)
    elif structure in ("tflite", "ethos_u"):
        fn = _tflite_add(qa, qb, qc, sign, num)
    else:
        fn = _rescale_each(qa, qb, qc, sign, num)
    return lambda a, b: np.clip(fn(a, b), qc.qmin, qc.qmax)


def _binary_kernel(fn: Binary, qa: QType, qb: QType, qc: QType) -> Kernel:
    """Run ``fn`` on codes, through a 256 x 256 table when both inputs are 8-bit."""
    if qa.dtype in ("int8", "uint8") and qb.dtype in ("int8", "uint8"):
        raw = np.arange(256, dtype=np.uint8)  # the table is indexed by the codes' raw bytes: no sign flip per call
        grid_a, grid_b = np.meshgrid(raw.view(qa.dtype), raw.view(qb.dtype), indexing="ij")
        table = np.asarray(fn(grid_a.astype(np.int64), grid_b.astype(np.int64))).astype(qc.dtype).reshape(-1)

        def run_table(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
            a, b = args[0], args[1]
            assert a is not None and b is not None
            a8, b8 = np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8)
            # the result takes a's memory layout, or b's where a is plain C order and b is not
            lead = b8 if a8.flags.c_contiguous and not b8.flags.c_contiguous else a8
            index = np.empty_like(lead, dtype=np.uint16) if a8.shape == b8.shape else None
            index = np.left_shift(a8, 8, dtype=np.uint16, out=index)
            np.bitwise_or(index, b8, out=index)
            return [take_in_layout(table, index)]

        return run_table

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return [fn(*_pair(args))]

    return run


def _rescale_each(qa: QType, qb: QType, qc: QType, sign: int, num: Numerics) -> Binary:
    if num.scale == "float32":
        return _ort_float32_add(qa, qb, qc, sign, num)
    if num.scale == "exact":
        return _exact_add(qa, qb, qc, sign, num)
    before = num.zero_point == "before"
    if num.scale == "double":
        ra = float(qa.s) / float(qc.s)
        rb = sign * float(qb.s) / float(qc.s)

        def run_double(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            v = (a - qa.z) * ra + (b - qb.z) * rb
            r = nx.round_float(v + qc.z if before else v, num.rounding).astype(np.int64)
            return r if before else r + qc.z

        return run_double
    if num.rounding == "tflite_double":
        raise ProfileError("structure=rescale_each with scale=fixed cannot use rounding=tflite_double")
    ratios = np.array([float(qa.s) / float(qc.s), float(qb.s) / float(qc.s)])
    mult, shift = fixed_point(np.array([ratios.max()]), num)
    right = (num.multiplier_bits if num.scale == "fixed" else 0) - int(shift[0])
    ma, mb = (round(r * 2.0**right) if right >= 0 else 0 for r in ratios)

    def run_fixed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        v = _sat((a - qa.z) * ma, num) + _sat(sign * (b - qb.z) * mb, num)
        v = _sat(v, num) + ((qc.z << right) if before and right > 0 else 0)
        r = round_output(v, right, num)
        return r if before and right > 0 else r + qc.z

    return run_fixed


def _sat(v: np.ndarray, num: Numerics) -> np.ndarray:
    return nx.saturate(v, num.intermediate_bits) if num.intermediate_bits else v


def _ort_float32_add(qa: QType, qb: QType, qc: QType, sign: int, num: Numerics) -> Binary:
    ra = np.float32(qa.s / qc.s)
    rb = np.float32(sign * np.float32(qb.s / qc.s))
    if num.zero_point == "before":
        f = np.float32(np.float32(qc.z) - nx.fma32(ra, np.float32(qa.z), np.float32(rb * np.float32(qb.z))))

        def run_before(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            t = nx.fma32(b.astype(np.float32), rb, f)
            v = nx.fma32(a.astype(np.float32), ra, t)
            return nx.round_float(v, num.rounding).astype(np.int64)

        return run_before

    def run_after(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = ((b - qb.z).astype(np.float32) * rb).astype(np.float32)
        v = nx.fma32((a - qa.z).astype(np.float32), ra, t)
        return nx.round_float(v, num.rounding).astype(np.int64) + qc.z

    return run_after


def _exact_add(qa: QType, qb: QType, qc: QType, sign: int, num: Numerics) -> Binary:
    fa, fb, fc = (Fraction(float(q.s)) for q in (qa, qb, qc))
    before = num.zero_point == "before"

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.broadcast_arrays(a - qa.z, sign * (b - qb.z))
        ta, tb = a * float(qa.s), b * float(qb.s)
        approx = (ta + tb) / float(qc.s) + (qc.z if before else 0)
        magnitude = (np.abs(ta) + np.abs(tb)) / float(qc.s) + abs(qc.z)
        fa_, fb_ = a.reshape(-1), b.reshape(-1)

        def exact_at(i: int) -> Fraction:
            v = (int(fa_[i]) * fa + int(fb_[i]) * fb) / fc
            return v + qc.z if before else v

        r = nx.round_exact(approx, exact_at, num.rounding, magnitude)
        return r if before else r + qc.z

    return run


def _mbqm(x: np.ndarray, m: int, shift: int, num: Numerics) -> np.ndarray:
    if num.rounding == "tflite_double":
        return nx.multiply_by_quantized_multiplier(x, m, shift)
    return nx.round_shift(x * m, num.multiplier_bits - shift, num.rounding)


def _tflite_add(qa: QType, qb: QType, qc: QType, sign: int, num: Numerics) -> Binary:
    wide = qa.dtype in ("int16", "uint16") or qc.dtype in ("int16", "uint16")
    ls = num.pre_shift16 if wide else num.pre_shift8
    twice_max = 2.0 * max(float(qa.s), float(qb.s))
    (m1, s1), (m2, s2), (mo, so) = (nx.quantize_multiplier(v, num.multiplier_bits) for v in (
        float(qa.s) / twice_max, float(qb.s) / twice_max, twice_max / ((1 << ls) * float(qc.s))))
    big_a = float(qa.s) >= float(qb.s)

    def operand(x: np.ndarray, m: int, s: int, is_big: bool) -> np.ndarray:
        if num.structure == "ethos_u" and is_big:
            return x << (ls - 1)
        return _sat(_mbqm(nx.wrap(x << ls, 32), m, s, num), num)

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        v1 = operand(a - qa.z, m1, s1, big_a)
        v2 = operand(b - qb.z, m2, s2, not big_a or float(qa.s) == float(qb.s))
        total = _sat(nx.wrap(v1 + sign * v2, 32), num)
        return _mbqm(total, mo, so, num) + qc.z

    return run


def build_mul_int(spec: OpSpec) -> Kernel:
    """Quantized Mul (QDQ group or QLinearMul)."""
    require_per_tensor(spec, 0, 1)
    qa, qb, qc, num = spec.q(0), spec.q(1), spec.out_q, spec.numerics
    requant = Requantizer(num, Ratio.of([qa.s, qb.s], [qc.s]), qc.zero_point, qc.qmin, qc.qmax)

    def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return requant(nx.limit(centered(a, qa) * centered(b, qb), num.acc_bits, num.acc_overflow))

    return _binary_kernel(fn, qa, qb, qc)


def build_binary_float(spec: OpSpec) -> Kernel:
    """Float32 Add/Sub/Mul (IEEE, identical to onnxruntime's elementwise kernels); integer
    operands (shape arithmetic) keep their dtype."""
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[spec.op_type]

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        a, b = args[0], args[1]
        assert a is not None and b is not None
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            return [np.asarray(fn(a, b), dtype=np.result_type(a, b))]
        return [np.asarray(fn(a.astype(np.float32), b.astype(np.float32)), dtype=np.float32)]

    return run
