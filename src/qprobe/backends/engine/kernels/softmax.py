"""Softmax (class ``activation``): integer QDQ/QLinearSoftmax form and float32 form.

Integer path, knob ``softmax``:

* ``tflite_fixed`` / ``tflite_fixed_single``: TFLite's reference fixed-point softmax
  (TFLM, CMSIS-NN; ``numerics_softmax.py``) with ``beta = 1`` and the parameters TFLite
  derives from the float32 input scale, when the output quantization is the one TFLite
  requires: int8 in -> int8 out (1/256, -128) or int16 out (1/65536, -32768); uint8 in ->
  uint8 out (1/256, 0); int16 in -> int16 out (1/32768, 0), with TFLM's float32-generated
  tables and the input rescaling double-rounded (``tflite_fixed``) or single-rounded
  (``tflite_fixed_single``). The scale must be within 0.1 % of TFLite's, as TFLite checks.
  Any other quantization falls back to the ``float`` path below, with a note in the
  session info (``float_nodes``). TFLite's *optimized* kernels use a float table
  instead; this models the reference kernels.
* ``float``: the paths chosen by knob ``scale``:

* ``float32``: onnxruntime's QLinearSoftmax (8-bit): a 256-entry float32 table
  ``T[i] = fl32(exp((i - 255 + b) * sx))`` (computed in double, ``b`` a range shift),
  read at ``x - max(x) + 255``; a float32 running sum ``S`` along the axis; then
  ``q = sat(round(fl32(fl32(T * floor(1/sy)) / S)) + zy)`` with ``rounding``. The input
  zero point and the exact output scale do not enter. Measured against onnxruntime
  1.32: about 2e-6 of the outputs, all at near-ties, still differ by one (a last-bit
  difference of the table or the sum that we did not pin down).
* anything else: ``softmax`` of the dequantized input in float64, quantized exactly
  (``exact``) or in float64, with ``rounding`` and ``zero_point``.

The float32 kernel computes ``exp(x - max)`` with numpy and divides by the sum; its
last bits can differ from MLAS's exp approximation (onnxruntime's unfused Softmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from qprobe.backends.engine import numerics_softmax as nsm
from qprobe.backends.engine.kernels.base import Kernel, OpSpec, QType, Ungroupable, require_per_tensor
from qprobe.backends.engine.kernels.quantize import quantize_float
from qprobe.backends.engine.numerics import round_float

# (input dtype, output dtype) -> (output scale, output zero point) that TFLite's kernels require
_TFLITE_OUT: dict[tuple[str, str], tuple[float, int]] = {
    ("int8", "int8"): (1 / 256, -128),
    ("uint8", "uint8"): (1 / 256, 0),
    ("int8", "int16"): (1 / 65536, -32768),
    ("int16", "int16"): (1 / 32768, 0),
}


def _axis_view(spec: OpSpec, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """(2-D rows to normalize, original shape): one axis (opset >= 13) or all dims from axis (< 13)."""
    opset = int(spec.info.get("opset", 13))
    axis = int(spec.attr("axis", -1 if opset >= 13 else 1)) % x.ndim
    if opset < 13:
        return x.reshape(int(np.prod(x.shape[:axis])), -1), x.shape
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(-1, x.shape[axis]), moved.shape


def _restore(spec: OpSpec, y2d: np.ndarray, shape: tuple[int, ...], ndim: int) -> np.ndarray:
    opset = int(spec.info.get("opset", 13))
    if opset < 13:
        return y2d.reshape(shape)
    axis = int(spec.attr("axis", -1)) % ndim
    return np.moveaxis(y2d.reshape(shape), -1, axis)


def _ort_table(xq: QType, length: int) -> np.ndarray:
    """The kernel's table: float32 ``FLT_MAX / length``, then ``log`` and ``exp`` in double (libm)."""
    headroom = float(np.float32(np.finfo(np.float32).max) / np.float32(length))
    shift = max(0.0, float(np.float32(math.log(headroom))) - 5.0) / float(xq.s)  # logf: float overload
    return np.array([math.exp((i - 255 + shift) * float(xq.s)) for i in range(256)]).astype(np.float32)


def _ort_rows(rows: np.ndarray, xq: QType, yq: QType, rounding: str) -> np.ndarray:
    table = _ort_table(xq, rows.shape[1])
    idx = rows - rows.max(axis=1, keepdims=True) + 255
    vals = table[idx]
    total = np.zeros(rows.shape[0], np.float32)
    for j in range(rows.shape[1]):  # the kernel's sequential float32 sum
        total = (total + vals[:, j]).astype(np.float32)
    ymul = np.float32(math.floor(np.float32(1.0) / yq.s))
    v = ((vals * ymul).astype(np.float32) / total[:, None]).astype(np.float32)
    return np.clip(round_float(v, rounding).astype(np.int64) + yq.z, yq.qmin, yq.qmax)


def _tflite_rows(xq: QType, yq: QType, single_rounding: bool) -> Callable[[np.ndarray], np.ndarray] | str:
    """TFLite's fixed-point softmax on rows of codes, or why this quantization cannot use it."""
    want = _TFLITE_OUT.get((xq.dtype, yq.dtype))
    if want is None:
        pairs = ", ".join(f"{i}->{o}" for i, o in _TFLITE_OUT)
        return f"TFLite's fixed-point softmax has no {xq.dtype}->{yq.dtype} kernel (it has {pairs})"
    s, z = want
    if yq.z != z or abs(float(yq.s) - s) > 0.001 * s:
        return (f"TFLite's fixed-point softmax needs output scale {s:g} and zero point {z} for "
                f"{xq.dtype}->{yq.dtype}, found {float(yq.s):g} and {yq.z}")
    try:
        if xq.dtype == "int16":
            mult, shift = nsm.softmax_params_s16(1.0, float(xq.s))
            exp_lut, recip_lut = nsm.softmax_s16_luts()
            return lambda rows: nsm.softmax_s16(rows, mult, shift, exp_lut, recip_lut, single_rounding=single_rounding)
        mult, shift, diff_min = nsm.softmax_params_s8(1.0, float(xq.s))
    except ValueError as e:
        return str(e)
    fn = {"int8": nsm.softmax_s8, "uint8": nsm.softmax_u8, "int16": nsm.softmax_s8_s16}[yq.dtype]
    return lambda rows: fn(rows, mult, shift, diff_min)


def build_softmax_int(spec: OpSpec) -> Kernel:
    require_per_tensor(spec, 0)
    xq, yq, num = spec.q(0), spec.out_q, spec.numerics
    fixed: Callable[[np.ndarray], np.ndarray] | None = None
    if num.softmax != "float":
        chosen = _tflite_rows(xq, yq, single_rounding=num.softmax == "tflite_fixed_single")
        if isinstance(chosen, str):
            spec.info["note"] = f"float64 softmax ({chosen})"
        else:
            fixed = chosen
    if fixed is None and num.scale == "float32" and xq.dtype not in ("int8", "uint8"):
        raise Ungroupable("onnxruntime's QLinearSoftmax is 8-bit only")

    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0]).astype(np.int64)
        rows, shape = _axis_view(spec, x)
        if fixed is not None:
            y = fixed(rows)
        elif num.scale == "float32":
            y = _ort_rows(rows, xq, yq, num.rounding)
        else:
            real = (rows - xq.z).astype(np.float64) * float(xq.s)
            e = np.exp(real - real.max(axis=1, keepdims=True))
            y = quantize_float(e / e.sum(axis=1, keepdims=True), np.asarray(yq.s), np.asarray(yq.z), yq.dtype, num)
        return [_restore(spec, np.asarray(y), shape, x.ndim)]

    return run


def build_softmax_float(spec: OpSpec) -> Kernel:
    def run(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x = np.asarray(args[0], np.float32)
        rows, shape = _axis_view(spec, x)
        e = np.exp(rows - rows.max(axis=1, keepdims=True))
        y = (e / e.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)
        return [_restore(spec, y, shape, x.ndim)]

    return run
