"""The safe envelope of an op, derived by sweeping one-op models on the emulation.

When fix is given a profile and no explanation, it measures where the emulation computes
the culprit's op class exactly: one model of many independent one-op groups (``Add``/``Sub``
or ``Concat`` of two int8 inputs covering every code pair, at the culprit's zero points and
output quantization), one operand at ratio ``r`` and the other at 1.0, in both positions.
Each ratio is run on the reference and on the emulation; a ratio is safe when, in both
positions, no code differs by more than ``SAFE_MAX_LSB`` and the mean difference is within
``SAFE_BIAS_LSB``. A coarse geometric grid is refined twice around every change of verdict,
so boundaries are known to ~0.1%. Runs on the emulation only (never on the target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qprobe.backends.base import Backend
from qprobe.fix.run import run_model
from qprobe.metrics import LsbAccumulator
from qprobe.model.inputs import InputSet
from qprobe.model.loader import model_from_proto
from qprobe.rewrite.envelope import RatioEnvelope
from qprobe.rewrite.site import Site
from qprobe.tensors import INT_RANGES, QuantParams

SAFE_MAX_LSB, SAFE_BIAS_LSB = 1.0, 0.5
GRID = tuple(float(r) for r in np.geomspace(1 / 16, 16, 65))
REFINE_POINTS, REFINE_ROUNDS = 17, 2
OP_OF_CLASS = {"eltwise": "Add", "concat": "Concat"}


@dataclass(frozen=True)
class SweepPoint:
    ratio: float
    safe: bool
    max_abs_lsb: float  # worse of the two positions
    mean_delta_lsb: float

    def to_json(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "safe": self.safe, "max_abs_lsb": self.max_abs_lsb,
                "mean_delta_lsb": self.mean_delta_lsb}


@dataclass(frozen=True)
class SweptEnvelope:
    envelope: RatioEnvelope
    points: tuple[SweepPoint, ...]
    source: str  # "sweep on <emulation>" or "explain"

    def to_json(self) -> dict[str, Any]:
        return {**self.envelope.to_json(), "source": self.source, "points": [p.to_json() for p in self.points]}


def op_class_of(op_type: str) -> str | None:
    return {"Add": "eltwise", "Sub": "eltwise", "Concat": "concat"}.get(op_type)


def sweep_envelope(site: Site, op_class: str, reference: Backend, emulation: Backend) -> SweptEnvelope:
    """Where ``emulation`` computes ``op_class`` like ``reference``, in the culprit's quantization."""
    op = site.node.op_type if op_class == "eltwise" and site.node.op_type in ("Add", "Sub") else OP_OF_CLASS[op_class]
    points = {p.ratio: p for p in _measure(site, op, GRID, reference, emulation)}
    for _ in range(REFINE_ROUNDS):
        ordered = sorted(points.values(), key=lambda p: p.ratio)
        fine: list[float] = []
        for a, b in zip(ordered, ordered[1:], strict=False):
            if a.safe != b.safe:
                fine += [float(r) for r in np.geomspace(a.ratio, b.ratio, REFINE_POINTS)[1:-1]]
        if not fine:
            break
        points.update({p.ratio: p for p in _measure(site, op, fine, reference, emulation)})
    ordered = sorted(points.values(), key=lambda p: p.ratio)
    env = envelope_from_points(op_class, op, ordered)
    return SweptEnvelope(env, tuple(ordered), f"sweep of one-op {op} models on {emulation.spec}")


def envelope_from_points(op_class: str, op: str, points: Sequence[SweepPoint]) -> RatioEnvelope:
    """Closed-open safe ranges between measured points (the grid's ends extend to 0 and infinity)."""
    safe: list[tuple[float, float]] = []
    start: float | None = None
    for i, p in enumerate(points):
        if p.safe and start is None:
            start = 0.0 if i == 0 else p.ratio
        if not p.safe and start is not None:
            safe.append((start, p.ratio))
            start = None
    if start is not None:
        safe.append((start, float("inf")))
    boundary = next((p.ratio for p in points if p.ratio > 1.0 and not p.safe), None)
    if boundary is None:
        statement = f"{op} is exact for every operand ratio measured ({points[0].ratio:.3g} to {points[-1].ratio:.3g})"
    else:
        statement = f"{op} is exact for every operand ratio below {boundary:.4g}, wrong at and above it"
    return RatioEnvelope(op_class, tuple(safe), boundary, statement)


def _measure(site: Site, op: str, ratios: Sequence[float], reference: Backend, emulation: Backend) -> list[SweepPoint]:
    proto, feeds, out_q = sweep_model(site, op, ratios)
    model = model_from_proto(proto)
    inputs = InputSet(feeds, "sweep")
    ref, emu = run_model(reference, model, inputs), run_model(emulation, model, inputs)
    points = []
    for k, r in enumerate(ratios):
        worst, bias = 0.0, 0.0
        for pos in (0, 1):
            acc = LsbAccumulator(out_q)
            acc.add(ref[f"out_{k}_{pos}"], emu[f"out_{k}_{pos}"])
            m = acc.result()
            worst, bias = max(worst, m.max_abs_lsb), max(bias, abs(m.mean_delta_lsb))
        points.append(SweepPoint(float(r), worst <= SAFE_MAX_LSB and bias <= SAFE_BIAS_LSB, worst, bias))
    return points


def _codes(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = INT_RANGES[dtype]
    if hi - lo <= 255:
        grid = np.arange(lo, hi + 1)
        return np.repeat(grid, grid.size), np.tile(grid, grid.size)
    rng = np.random.default_rng(0)
    return rng.integers(lo, hi + 1, 65536), rng.integers(lo, hi + 1, 65536)


def sweep_model(site: Site, op: str,
                ratios: Sequence[float]) -> tuple[onnx.ModelProto, dict[str, np.ndarray], QuantParams]:
    """The one-op models for ``ratios`` in both operand positions, their inputs, the output quantization."""
    qa, qb = site.operands[0].quant, site.operands[1].quant if len(site.operands) > 1 else site.operands[0].quant
    qo = site.out_quant
    so = float(qo.scale[0])
    xa, xb = _codes(qa.dtype)
    inits = [_t("zo", qo.zero_point[0], qo.dtype), _t("so", so, "float32"),
             _t("za", qa.zero_point[0], qa.dtype), _t("zb", qb.zero_point[0], qb.dtype)]
    nodes, outs = [], []
    for k, r in enumerate(ratios):
        for pos in (0, 1):
            tag = f"{k}_{pos}"
            inits += [_t(f"sa_{tag}", so * (r if pos == 0 else 1.0), "float32"),
                      _t(f"sb_{tag}", so * (r if pos == 1 else 1.0), "float32")]
            nodes += [helper.make_node("DequantizeLinear", ["x", f"sa_{tag}", "za"], [f"a_{tag}"], name=f"dqa_{tag}"),
                      helper.make_node("DequantizeLinear", ["y", f"sb_{tag}", "zb"], [f"b_{tag}"], name=f"dqb_{tag}"),
                      _op(op, [f"a_{tag}", f"b_{tag}"], f"c_{tag}", f"op_{tag}"),
                      helper.make_node("QuantizeLinear", [f"c_{tag}", "so", "zo"], [f"out_{tag}"], name=f"q_{tag}")]
            outs.append(helper.make_tensor_value_info(f"out_{tag}", _onnx_type(qo.dtype), None))
    graph = helper.make_graph(nodes, "qprobe_envelope_sweep",
                              [helper.make_tensor_value_info("x", _onnx_type(qa.dtype), ["N", xa.size]),
                               helper.make_tensor_value_info("y", _onnx_type(qb.dtype), ["N", xb.size])], outs, inits)
    opset = 21 if "16" in qa.dtype + qb.dtype + qo.dtype else 17
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=10 if opset == 21 else 8)
    feeds = {"x": xa.astype(qa.dtype)[None], "y": xb.astype(qb.dtype)[None]}
    return proto, feeds, qo


def _op(op: str, inputs: list[str], output: str, name: str) -> onnx.NodeProto:
    if op == "Concat":
        return helper.make_node(op, inputs, [output], name=name, axis=1)
    return helper.make_node(op, inputs, [output], name=name)


def _t(name: str, value: float | int, dtype: str) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.dtype(dtype)), name)


def _onnx_type(dtype: str) -> int:
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def from_explanation(envelope: Any) -> RatioEnvelope:
    """The contract's ``Envelope`` (an object or its JSON dict) as the rewrite passes read it."""
    d = envelope if isinstance(envelope, dict) else {
        "op_class": envelope.op_class, "safe": [list(r) for r in envelope.safe], "boundary": envelope.boundary,
        "statement": envelope.statement}
    return RatioEnvelope.from_json(d)


