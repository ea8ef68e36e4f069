"""Numerics profiles: the named, explicit arithmetic that the integer engine applies.

A ``Profile`` holds one ``Numerics`` record (a flat set of knobs) per *op class*, plus
overrides per op type and per node. Every kernel documents the knobs it reads; knobs a
kernel does not read have no effect on it.

Op classes (``OP_CLASSES``): ``conv`` (Conv, QLinearConv, ConvInteger), ``gemm`` (Gemm,
MatMul, QGemm, QLinearMatMul, MatMulInteger), ``eltwise`` (Add, Sub, QLinearAdd),
``mul`` (Mul, QLinearMul), ``concat`` (Concat, QLinearConcat and every requantization
of codes from one scale to another: data movement and MaxPool whose output
quantization differs from their input's), ``pool`` (AveragePool, GlobalAveragePool
and their QLinear forms), ``activation`` (Relu, Clip, PRelu, LeakyRelu,
Sigmoid, Tanh, HardSwish, Softmax and their QLinear forms; knob ``softmax`` chooses
between a float softmax and TFLite's fixed-point one), ``quantize`` (QuantizeLinear of
float tensors). Knob ``float_weights`` (classes ``conv``, ``gemm``) says what a float32
weight inside a QDQ group becomes (``ort_quantize``: what onnxruntime's optimizer makes of it).

Resolution order for one node: class defaults, then ``ops.<OpType>``, then
``nodes.<node>``.

Override keys (CLI ``--set``/``--target-opt key=value``, ``Profile.with_overrides``):

* ``<knob>=v``                      every class, e.g. ``rounding=half_up``
* ``<class>.<knob>=v``              one class, e.g. ``eltwise.structure=affine``
* ``ops.<OpType>.<knob>=v``         one op type, e.g. ``ops.Sub.compute=float``
* ``nodes.<node>.<knob>=v``         one node, e.g. ``nodes.block0_add.coeff_overflow=wrap``
* ``nodes.<node>.<class>.<knob>=v`` the same, stating the node's class (checked), e.g.
  ``nodes.block0_add.eltwise.structure=affine``. Node names may contain dots: the last
  component is the knob and the one before it is read as a class when it names one.

TOML profile files (``engine:path/to/profile.toml``)::

    name = "my-npu"
    description = "what this models and how sure we are"
    base = "onnxruntime"          # optional: start from a built-in profile
    [defaults]                    # every class
    rounding = "half_up"
    [eltwise]
    structure = "affine"
    [ops.Sub]
    compute = "float"
    [nodes."block0_add"]          # or [nodes."block0_add".eltwise]
    coeff_overflow = "wrap"
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import onnx

from qprobe.errors import ProfileError

OP_CLASSES = ("conv", "gemm", "eltwise", "mul", "concat", "pool", "activation", "quantize")

# knob -> (allowed values, or None for a non-negative integer; help)
KNOBS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "compute": (("integer", "float", "integer8"),
                "integer kernel; float32 DQ -> op -> Q as a CPU float fallback; or integer8: integer for "
                "8-bit groups and float for groups with a 16-bit tensor (onnxruntime's CPU EP fuses no 16-bit QDQ)"),
    "scale": (("float32", "double", "exact", "fixed", "pow2"),
              "multiplier representation: float32 as onnxruntime computes it, float64, exact rational, "
              "fixed-point of multiplier_bits bits with a shift, or power of two"),
    "multiplier_bits": (None, "bits of a fixed-point multiplier (31: TFLite's Q31)"),
    "rounding": (("half_even", "half_up", "half_down", "half_away", "floor", "truncate", "tflite_double"),
                 "rounding of the requantized value (tflite_double: SRDHM + RDBPOT, fixed 31-bit only)"),
    "zero_point": (("after", "before"), "output zero point added after rounding (ONNX) or before it"),
    "acc_bits": (None, "accumulator width in bits (for acc_overflow wrap/saturate)"),
    "acc_overflow": (("exact", "wrap", "saturate"), "what the accumulator does beyond acc_bits"),
    "structure": (("rescale_each", "tflite", "ethos_u", "affine"),
                  "eltwise/concat structure: rescale each operand to the output; TFLite pre-shift "
                  "common scale; rescale only the smaller-scale operand (Ethos-U); affine unit"),
    "pre_shift8": (None, "left shift before rescaling 8-bit operands (tflite/ethos_u structures)"),
    "pre_shift16": (None, "left shift before rescaling 16-bit operands (tflite/ethos_u structures)"),
    "coeff_bits": (None, "affine unit: signed coefficient width"),
    "coeff_overflow": (("saturate", "wrap", "lower", "lower_uncompensated"),
                       "affine unit: what a coefficient that does not fit does: saturate, wrap (two's "
                       "complement), lower (taken with fewer fractional bits, compensated by a left shift "
                       "of the product or, with coeff_shift=shared, a smaller output shift) or "
                       "lower_uncompensated (fewer fractional bits, the lost factor 2**k never restored)"),
    "coeff_shift": (("per_operand", "shared"),
                    "affine unit: each coefficient with its own right shift for precision (A*x >> sa), "
                    "or one shared exponent for all (sa = 0: small ratios keep fewer bits)"),
    "coeff_rounding": (("half_away", "half_even", "half_up", "floor", "truncate"),
                       "affine unit: how the compiler rounds a real coefficient or offset to an integer "
                       "(floor and truncate differ on negative values: Sub, folded zero points)"),
    "double_round": (None, "affine unit and fixed-point rescale_each: round the output shift in two steps, "
                           "the lowest N bits first (a double rounding); 0: one rounding"),
    "shift_o": (None, "affine unit: output right shift"),
    "operand_rounding": (("half_even", "half_up", "half_down", "half_away", "floor", "truncate"),
                         "affine unit: rounding of the per-operand right shifts (A*x >> sa)"),
    "intermediate_bits": (None, "saturate eltwise intermediates (operand terms and sums) to N bits; 0: never"),
    "float_weights": (("float", "ort_quantize"),
                      "Conv/Gemm with a float32 weight or bias inside a QDQ group: keep it float (the op runs in "
                      "float32), or quantize it as onnxruntime's optimizer does (int8 per-tensor asymmetric weight, "
                      "int32 bias at s_x*s_w; see qprobe.model.patterns)"),
    "softmax": (("float", "tflite_fixed", "tflite_fixed_single"),
                "integer Softmax: float (the path knob scale selects) or TFLite's reference fixed-point "
                "softmax when the output quantization is TFLite's (int16 input: double/single-rounded "
                "input rescaling); other quantizations fall back to float, with a note"),
}


@dataclass(frozen=True)
class Numerics:
    """The knobs of one op class (see ``KNOBS`` for their meaning)."""

    compute: str = "integer"
    scale: str = "exact"
    multiplier_bits: int = 31
    rounding: str = "half_even"
    zero_point: str = "after"
    acc_bits: int = 32
    acc_overflow: str = "exact"
    structure: str = "rescale_each"
    pre_shift8: int = 20
    pre_shift16: int = 15
    coeff_bits: int = 16
    coeff_overflow: str = "saturate"
    coeff_shift: str = "per_operand"
    coeff_rounding: str = "half_away"
    double_round: int = 0
    shift_o: int = 14
    operand_rounding: str = "floor"
    intermediate_bits: int = 0
    softmax: str = "float"
    float_weights: str = "float"

    def __post_init__(self) -> None:
        for f in fields(self):
            check_knob(f.name, getattr(self, f.name))
        if self.rounding == "tflite_double" and (self.scale != "fixed" or self.multiplier_bits != 31):
            raise ProfileError(
                "rounding=tflite_double needs scale=fixed and multiplier_bits=31 "
                f"(found scale={self.scale}, multiplier_bits={self.multiplier_bits})"
            )

    def with_knobs(self, knobs: Mapping[str, Any]) -> Numerics:
        return replace(self, **{k: coerce_knob(k, v) for k, v in knobs.items()})


def check_knob(name: str, value: Any) -> None:
    if name not in KNOBS:
        raise ProfileError(f"unknown profile knob {name!r}{_suggest(name, KNOBS)}; known knobs: {', '.join(KNOBS)}")
    allowed, _help = KNOBS[name]
    if allowed is None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 64:
            raise ProfileError(f"knob {name!r} needs an integer in [0, 64], got {value!r}")
    elif value not in allowed:
        raise ProfileError(f"knob {name!r} cannot be {value!r}; allowed: {', '.join(allowed)}")


def coerce_knob(name: str, value: Any) -> Any:
    """Turn a CLI/TOML value into the knob's type, checking it."""
    if name not in KNOBS:
        check_knob(name, value)  # raises, listing the known knobs
    if KNOBS[name][0] is None and isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError as e:
            raise ProfileError(f"knob {name!r} needs an integer, got {value!r}") from e
    if isinstance(value, str):
        value = value.strip()
    check_knob(name, value)
    return value


def _suggest(word: str, options: Mapping[str, Any] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Profile:
    """A named set of numerics: per class, per op type and per node.

    ``ops[op_type]`` and ``nodes[node]`` map knob names (or ``class.knob`` for nodes) to values.
    """

    name: str
    description: str
    classes: Mapping[str, Numerics]
    ops: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def numerics_for(self, op_class: str, op_type: str = "", node: str = "") -> Numerics:
        """The knobs that apply to one node of ``op_class``."""
        num = self.classes[op_class]
        if op_type in self.ops:
            num = num.with_knobs(self.ops[op_type])
        mine = {}
        for key, value in self.nodes.get(node, {}).items():
            cls, _, knob = key.rpartition(".")
            if not cls or cls == op_class:
                mine[knob] = value
        return num.with_knobs(mine) if mine else num

    def node_class_claims(self) -> dict[str, set[str]]:
        """The classes that node overrides name explicitly (checked against the graph)."""
        return {n: {k.rpartition(".")[0] for k in kv if "." in k} for n, kv in self.nodes.items()}

    def with_overrides(self, overrides: Mapping[str, Any]) -> Profile:
        """A copy with ``key=value`` overrides applied (see the module docstring for keys)."""
        per_class: dict[str, dict[str, Any]] = {c: {} for c in self.classes}
        ops = {k: dict(v) for k, v in self.ops.items()}
        nodes = {k: dict(v) for k, v in self.nodes.items()}
        for key, value in overrides.items():
            scope, target, knob = parse_key(key)
            val = coerce_knob(knob.rpartition(".")[2], value)
            if scope == "all":
                for d in per_class.values():
                    d[knob] = val
            elif scope == "class":
                per_class[target][knob] = val
            elif scope == "op":
                ops.setdefault(target, {})[knob] = val
            else:
                nodes.setdefault(target, {})[knob] = val
        classes = {c: n.with_knobs(per_class[c]) if per_class[c] else n for c, n in self.classes.items()}
        suffix = "" if not overrides else " +" + ",".join(f"{k}={v}" for k, v in overrides.items())
        return replace(self, classes=classes, ops=ops, nodes=nodes, description=self.description + suffix)

    def to_dict(self) -> dict[str, Any]:
        """A TOML-shaped dict (the inverse of ``profile_from_dict``)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        for c, n in self.classes.items():
            out[c] = dataclasses.asdict(n)
        out["ops"] = {k: dict(v) for k, v in self.ops.items()}
        out["nodes"] = {k: dict(v) for k, v in self.nodes.items()}
        return out


def parse_key(key: str) -> tuple[str, str, str]:
    """Split an override key into (scope, target, knob); scope is all/class/op/node."""
    parts = key.strip().split(".")
    if len(parts) == 1:
        return "all", "", _known_knob(parts[0], key)
    if parts[0] in OP_CLASSES and len(parts) == 2:
        return "class", parts[0], _known_knob(parts[1], key)
    if parts[0] == "ops" and len(parts) == 3:
        return "op", _known_op_type(parts[1], key), _known_knob(parts[2], key)
    if parts[0] == "nodes" and len(parts) >= 3:
        knob = _known_knob(parts[-1], key)
        if len(parts) >= 4 and parts[-2] in OP_CLASSES:
            return "node", ".".join(parts[1:-2]), f"{parts[-2]}.{knob}"
        return "node", ".".join(parts[1:-1]), knob
    raise ProfileError(
        f"cannot read override key {key!r}; use <knob>, <class>.<knob>, ops.<OpType>.<knob> or "
        f"nodes.<node>[.<class>].<knob>; classes: {', '.join(OP_CLASSES)}; knobs: {', '.join(KNOBS)}"
    )


@functools.cache
def _op_types() -> frozenset[str]:
    """Every ONNX op type; the quantized contrib ops (QLinearAdd, QGemm, ...) are accepted by prefix."""
    return frozenset(schema.name for schema in onnx.defs.get_all_schemas_with_history())


def _known_op_type(op_type: str, key: str) -> str:
    if op_type in _op_types() or op_type.startswith("Q"):
        return op_type
    same = [t for t in _op_types() if t.lower() == op_type.lower()]
    hint = f" (did you mean {same[0]!r}?)" if same else _suggest(op_type, tuple(sorted(_op_types())))
    raise ProfileError(f"override {key!r}: {op_type!r} is no ONNX op type{hint}; op types are case-sensitive, "
                       "as in ops.Add.rounding=...")


def _known_knob(knob: str, key: str) -> str:
    if knob not in KNOBS:
        raise ProfileError(
            f"override {key!r}: unknown knob {knob!r}{_suggest(knob, KNOBS)}; known knobs: {', '.join(KNOBS)}"
        )
    return knob


def profile_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Profile:
    """Build a profile from a TOML-shaped mapping (optionally ``base = "<built-in>"``)."""
    from qprobe.backends.engine.builtin_profiles import get_profile

    unknown = set(data) - {"name", "description", "base", "defaults", "ops", "nodes", *OP_CLASSES}
    if unknown:
        raise ProfileError(
            f"{source}: unknown table(s) {sorted(unknown)}; known: name, description, base, defaults, "
            f"ops, nodes, {', '.join(OP_CLASSES)}"
        )
    base = get_profile(str(data["base"])) if "base" in data else Profile("", "", dict.fromkeys(OP_CLASSES, Numerics()))
    flat: dict[str, Any] = {}
    for knob, v in dict(data.get("defaults", {})).items():
        flat[knob] = v
    for c in OP_CLASSES:
        for knob, v in dict(data.get(c, {})).items():
            flat[f"{c}.{knob}"] = v
    for op, kv in dict(data.get("ops", {})).items():
        for knob, v in dict(kv).items():
            flat[f"ops.{op}.{knob}"] = v
    prof = base.with_overrides(flat)
    nodes = {k: dict(v) for k, v in prof.nodes.items()}
    for node, kv in dict(data.get("nodes", {})).items():
        for knob, v in dict(kv).items():
            items = dict(v).items() if isinstance(v, Mapping) else [(None, v)]
            for sub, val in items:
                key = knob if sub is None else f"{knob}.{sub}"
                cls, _, k = key.rpartition(".")
                if cls and cls not in OP_CLASSES:
                    raise ProfileError(f"{source}: nodes.{node}: {cls!r} is not a class; known: {OP_CLASSES}")
                nodes.setdefault(str(node), {})[key] = coerce_knob(_known_knob(k, key), val)
    return replace(prof, name=str(data.get("name", Path(source).stem)),
                   description=str(data.get("description", f"profile loaded from {source}")), nodes=nodes)


def load_profile_file(path: str | Path) -> Profile:
    """Read a TOML profile; errors name the file and what is wrong in it."""
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"profile file {str(p)!r} does not exist; pass a .toml file or a built-in name")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"profile file {str(p)!r} is not valid TOML: {e}") from e
    return profile_from_dict(data, str(p))
