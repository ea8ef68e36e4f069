"""The built-in numerics profiles, as data, and the one registry that names them.

Each entry is a description plus knob values per op class on top of ``Numerics()``
defaults, and optional per-op-type overrides. Sources of each formula:
``docs/arithmetic.md`` (ONNX, onnxruntime, TFLite/CMSIS-NN) and
``docs/neural-art.md`` (the Neural-ART ARITH unit).
"""

from __future__ import annotations

from typing import Any

from qprobe.backends.engine.profiles import OP_CLASSES, Numerics, Profile, load_profile_file
from qprobe.errors import ProfileError

_ORT_CLASSES: dict[str, dict[str, Any]] = {
    "conv": {"scale": "float32", "compute": "integer8", "float_weights": "ort_quantize"},
    "gemm": {"scale": "float32", "compute": "integer8", "float_weights": "ort_quantize"},
    "eltwise": {"scale": "float32", "zero_point": "before", "compute": "integer8"},
    "mul": {"scale": "float32", "zero_point": "before", "compute": "integer8"},
    "concat": {"scale": "float32", "compute": "integer8"},
    "pool": {"scale": "float32", "zero_point": "before", "compute": "integer8"},
    "activation": {"scale": "float32", "compute": "integer8"},
    "quantize": {"scale": "float32"},
}
# onnxruntime fuses none of these QDQ groups: they run as float32 DQ -> op -> Q.
_ORT_FLOAT_OPS: dict[str, dict[str, Any]] = {op: {"compute": "float"} for op in ("Sub", "PRelu", "Tanh", "HardSwish")}

_TFL_FIXED: dict[str, Any] = {"scale": "fixed", "multiplier_bits": 31, "rounding": "tflite_double"}
_TFL_CLASSES: dict[str, dict[str, Any]] = {
    "conv": _TFL_FIXED,
    "gemm": _TFL_FIXED,
    "eltwise": {**_TFL_FIXED, "structure": "tflite"},
    "mul": _TFL_FIXED,
    "concat": _TFL_FIXED,
    "pool": {"scale": "exact", "rounding": "half_away"},
    "activation": {"scale": "double", "rounding": "half_away", "softmax": "tflite_fixed"},
    "quantize": {"scale": "float32", "rounding": "half_away"},
}


def _single(classes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {c: {**kv, "rounding": "half_up"} if kv.get("rounding") == "tflite_double" else kv
           for c, kv in classes.items()}
    out["activation"] = {**out["activation"], "softmax": "tflite_fixed_single"}
    return out


_AFFINE: dict[str, Any] = {
    "structure": "affine", "scale": "double", "coeff_bits": 16, "shift_o": 14,
    "coeff_overflow": "wrap", "rounding": "half_up", "operand_rounding": "floor", "zero_point": "after",
}

# name -> (description, per-class knobs, per-op knobs)
BUILTIN: dict[str, tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {
    "onnxruntime": (
        "onnxruntime CPU (x86-64, AVX2/AVX-512 with FMA): fused QLinear* kernels with float32 "
        "requantization (QLinearAdd/Mul fold the zero point before rounding); ops that onnxruntime "
        "does not fuse run as float32 DQ -> op -> Q; float Conv/Gemm weights inside QDQ groups are "
        "quantized as onnxruntime's optimizer does",
        _ORT_CLASSES, _ORT_FLOAT_OPS,
    ),
    "exact": (
        "the ONNX specification computed exactly: rational arithmetic on the float32 scales, "
        "round half to even, zero point added after rounding; QuantizeLinear of a float32 tensor "
        "divides in float32 (fl32(x / s)) as the ONNX reference evaluator and test data do",
        {**{c: {"scale": "exact"} for c in OP_CLASSES}, "quantize": {"scale": "float32"}}, {},
    ),
    "tflite": (
        "TFLite / TFLM reference kernels and CMSIS-NN default build: Q31 multipliers, double "
        "rounding (SRDHM + RDBPOT), ADD with a 20-bit (int8) / 15-bit (int16) pre-shift, the "
        "reference fixed-point Softmax",
        _TFL_CLASSES, {},
    ),
    "tflite-single-rounding": (
        "TFLite with TFLITE_SINGLE_ROUNDING / CMSIS-NN with CMSIS_NN_USE_SINGLE_ROUNDING: Q31 "
        "multipliers, one round-half-up shift",
        _single(_TFL_CLASSES), {},
    ),
    "arith16-wrap": (
        "HYPOTHESIS, not a vendor fact: a model of the STM32N6 Neural-ART ARITH affine unit "
        "reconstructed from compiled artifacts (docs/neural-art.md). Eltwise Add/Sub and "
        "requantizing Concat compute sat(round_shift((A*x >> sa) + (B*y >> sb) + (C << sc), 14)) "
        "with signed 16-bit coefficients that WRAP when a scale ratio needs more than 16 bits; "
        "everything else as the onnxruntime profile, except that float weights inside QDQ groups stay float",
        {**_ORT_CLASSES, "eltwise": _AFFINE, "concat": _AFFINE,
         # float weights stay float: an NPU compiler is not onnxruntime's optimizer
         "conv": {**_ORT_CLASSES["conv"], "float_weights": "float"},
         "gemm": {**_ORT_CLASSES["gemm"], "float_weights": "float"}},
        {k: v for k, v in _ORT_FLOAT_OPS.items() if k != "Sub"},
    ),
}


def known_profiles() -> list[str]:
    return list(BUILTIN)


def get_profile(name: str) -> Profile:
    """A built-in profile by name, or a TOML profile by path (``*.toml``)."""
    if name.endswith(".toml"):
        return load_profile_file(name)
    entry = BUILTIN.get(name)
    if entry is None:
        raise ProfileError(
            f"unknown numerics profile {name!r}; built-in profiles: {', '.join(BUILTIN)} "
            "(or pass the path of a .toml profile file)"
        )
    description, classes, ops = entry
    return Profile(
        name=name,
        description=description,
        classes={c: Numerics().with_knobs(classes.get(c, {})) for c in OP_CLASSES},
        ops={k: dict(v) for k, v in ops.items()},
    )
