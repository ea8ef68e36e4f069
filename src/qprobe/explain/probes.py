"""Synthetic probe models for characterization: many independent one-op subgraphs in one model.

Each ``ProbeConfig`` becomes one QDQ subgraph (DequantizeLinear of shared int8 inputs with
its own scales and zero points, the op, a QuantizeLinear), its own graph output
``probe_<i>``, so one target run measures a whole sweep. Feeds cover every input code:

* ``Add``/``Sub``: inputs ``a``, ``b`` of shape [16, 4096] holding all 65 536 int8 pairs;
* ``Concat`` (requantizing): ``x`` of shape [1, 256] (every code), concatenated with a copy
  of itself quantized like the output;
* ``Conv`` (1x1, 16 -> 8 channels, per-channel weights): random full-range codes, with the
  extremes; two sweeps: the per-channel multipliers ``sx*sw/sy`` with small accumulators,
  and the accumulator magnitude (weights growing over channels and configs) with
  multipliers that keep the outputs in range.

``ratio`` of a config is the swept operand's float32 scale over the output's (or the
conv's first channel multiplier); the other operand sits at a ratio below 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from qprobe.backends.engine.kernels import KERNELS
from qprobe.backends.engine.kernels.base import Operand, OpSpec, QType
from qprobe.backends.engine.profiles import Numerics
from qprobe.explain.opspec import GroupSpec
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_from_proto

OUT_SCALE = 0.02
OTHER_RATIO = 0.7
CONV_IN, CONV_OUT, CONV_LEN = 16, 8, 64


@dataclass(frozen=True)
class ProbeConfig:
    ratio: float  # requested swept parameter
    swept: int = 0  # which operand carries it (0 or 1)
    zero_points: tuple[int, int, int] = (3, -5, 1)  # inputs..., output
    kind: str = "multiplier"  # conv only: "multiplier" or "accumulator" sweep
    step: float = 0.0  # conv accumulator sweep: channel k aims at |acc| = ratio + k * step

    def scales(self) -> tuple[float, float, float]:
        other = OTHER_RATIO * OUT_SCALE
        mine = self.ratio * OUT_SCALE
        return (mine, other, OUT_SCALE) if self.swept == 0 else (other, mine, OUT_SCALE)

    def actual_ratio(self) -> float:
        s = [float(np.float32(v)) for v in self.scales()]
        return s[self.swept] / s[2]


def _q(name: str, scale: float | np.ndarray, zp: int | np.ndarray, dtype: type = np.int8) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(np.asarray(scale, dtype=np.float32), f"{name}_s"),
            numpy_helper.from_array(np.asarray(zp, dtype=dtype), f"{name}_z")]


def _dq(src: str, name: str) -> onnx.NodeProto:
    return helper.make_node("DequantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{name}_f"], name=f"{name}_dq")


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], inputs: dict[str, list[str | int]],
           outputs: dict[str, list[str | int]]) -> ir.Model:
    graph = helper.make_graph(
        nodes, "qprobe_characterization",
        [helper.make_tensor_value_info(n, TensorProto.INT8, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.INT8, s) for n, s in outputs.items()], inits)
    return model_from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def eltwise_probe(op_type: str, configs: Sequence[ProbeConfig]) -> tuple[ir.Model, InputSet]:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for i, c in enumerate(configs):
        (sa, sb, so), (za, zb, zo) = c.scales(), c.zero_points
        inits += [*_q(f"p{i}_a", sa, za), *_q(f"p{i}_b", sb, zb), *_q(f"p{i}_o", so, zo)]
        nodes += [_dq("a", f"p{i}_a"), _dq("b", f"p{i}_b"),
                  helper.make_node(op_type, [f"p{i}_a_f", f"p{i}_b_f"], [f"p{i}_y"], name=f"probe_{i}_op"),
                  helper.make_node("QuantizeLinear", [f"p{i}_y", f"p{i}_o_s", f"p{i}_o_z"], [f"probe_{i}"],
                                   name=f"probe_{i}_q")]
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    feeds = {"a": a.astype(np.int8).reshape(16, 4096), "b": b.astype(np.int8).reshape(16, 4096)}
    model = _model(nodes, inits, {"a": ["N", 4096], "b": ["N", 4096]},
                   {f"probe_{i}": ["N", 4096] for i in range(len(configs))})
    return model, InputSet(feeds, "every int8 input pair")


def concat_probe(configs: Sequence[ProbeConfig]) -> tuple[ir.Model, InputSet]:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for i, c in enumerate(configs):
        (sa, _sb, so), (za, _zb, zo) = c.scales(), c.zero_points
        inits += [*_q(f"p{i}_a", sa, za), *_q(f"p{i}_c", so, zo), *_q(f"p{i}_o", so, zo)]
        nodes += [_dq("x", f"p{i}_a"), _dq("x", f"p{i}_c"),
                  helper.make_node("Concat", [f"p{i}_a_f", f"p{i}_c_f"], [f"p{i}_y"], name=f"probe_{i}_op", axis=1),
                  helper.make_node("QuantizeLinear", [f"p{i}_y", f"p{i}_o_s", f"p{i}_o_z"], [f"probe_{i}"],
                                   name=f"probe_{i}_q")]
    feeds = {"x": np.arange(-128, 128).astype(np.int8).reshape(1, 256)}
    model = _model(nodes, inits, {"x": ["N", 256]}, {f"probe_{i}": ["N", 512] for i in range(len(configs))})
    return model, InputSet(feeds, "every int8 code")


def conv_weights(c: ProbeConfig, rng: np.random.Generator, x_bound: int) -> np.ndarray:
    """Small random weights for the multiplier sweep (accumulators far below 2**15); for the
    accumulator sweep, positive weights whose sum makes channel k's largest |accumulator|
    ``x_bound * sum(w)`` as close as possible to ``ratio + k * step``."""
    if c.kind == "multiplier":
        return (rng.integers(-1, 2, size=(CONV_OUT, CONV_IN, 1)) * 8).astype(np.int8)
    w = np.zeros((CONV_OUT, CONV_IN, 1), dtype=np.int64)
    for k in range(CONV_OUT):
        total = int(np.clip(round((c.ratio + k * c.step) / x_bound), 1, 127 * CONV_IN))
        w[k, :, 0] = total // CONV_IN + (np.arange(CONV_IN) < total % CONV_IN)
    return w.astype(np.int8)


def conv_multipliers(c: ProbeConfig, w: np.ndarray, x_bound: int) -> np.ndarray:
    """Channel multipliers ``sx*sw/sy``: the swept value over channels (multiplier sweep), or one
    that keeps each channel's largest accumulator within 100 output codes (accumulator sweep)."""
    if c.kind == "multiplier":
        return np.asarray([c.ratio / 2 ** (k / 2) for k in range(CONV_OUT)])
    bound = np.abs(w.astype(np.int64)).reshape(CONV_OUT, -1).sum(axis=1) * x_bound
    return 100.0 / bound


def conv_probe(configs: Sequence[ProbeConfig], seed: int = 0) -> tuple[ir.Model, InputSet]:
    """1x1 Conv subgraphs (16 -> 8 channels, per-channel weights) on random full-range codes."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    sx, sy = 0.05, 0.05
    for i, c in enumerate(configs):
        x_bound = 128 + abs(c.zero_points[0])
        w = conv_weights(c, rng, x_bound)
        m = conv_multipliers(c, w, x_bound)
        sw = np.asarray(m * sy / sx, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"p{i}_w_codes"), *_q(f"p{i}_x", sx, c.zero_points[0]),
                  *_q(f"p{i}_y", sy, c.zero_points[2]), *_q(f"p{i}_w", sw, np.zeros(CONV_OUT, dtype=np.int8))]
        nodes += [_dq("x", f"p{i}_x"),
                  helper.make_node("DequantizeLinear", [f"p{i}_w_codes", f"p{i}_w_s", f"p{i}_w_z"], [f"p{i}_w_f"],
                                   name=f"p{i}_w_dq", axis=0),
                  helper.make_node("Conv", [f"p{i}_x_f", f"p{i}_w_f"], [f"p{i}_c"], name=f"probe_{i}_op"),
                  helper.make_node("QuantizeLinear", [f"p{i}_c", f"p{i}_y_s", f"p{i}_y_z"], [f"probe_{i}"],
                                   name=f"probe_{i}_q")]
    x = rng.integers(-128, 128, size=(8, CONV_IN, CONV_LEN))
    x[0, :, :8] = 127  # every channel's extreme accumulator occurs
    x[0, :, 8:16] = -128
    feeds = {"x": x.astype(np.int8)}
    model = _model(nodes, inits, {"x": ["N", CONV_IN, CONV_LEN]},
                   {f"probe_{i}": ["N", CONV_OUT, CONV_LEN] for i in range(len(configs))})
    return model, InputSet(feeds, "random int8 codes")


def synthetic_spec(op_type: str, config: ProbeConfig) -> GroupSpec:
    """The engine spec of one probe subgraph, without building a model (to predict hypotheses)."""
    (sa, sb, so), (za, zb, zo) = config.scales(), config.zero_points
    qo = QType.make(np.float32(so), zo, "int8")
    if op_type == "Concat":
        ops = (Operand("x", None, QType.make(np.float32(sa), za, "int8")), Operand("x", None, qo))
    else:
        ops = (Operand("a", None, QType.make(np.float32(sa), za, "int8")),
               Operand("b", None, QType.make(np.float32(sb), zb, "int8")))
    spec = OpSpec("probe", op_type, {"axis": 1} if op_type == "Concat" else {}, ops, ("q",), (qo,), Numerics(), {})
    return GroupSpec(spec, KERNELS[op_type].op_class, (qo.qmin, qo.qmax))
