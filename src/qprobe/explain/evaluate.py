"""Fast evaluation of hypotheses on observations, with the engine's own kernels.

An observation set holds what one op computed on the target (its input codes and output
codes) in the form that makes a hypothesis cheap to test:

* ``PairSet`` (Add/Sub/Mul with two 8-bit inputs): the observations as a histogram over
  (input pair, output code); a hypothesis is the 256 x 256 table the engine's kernel
  builds (``eltwise.add_function``, or Mul's kernel, on every pair, the float fallback
  through ``float_group``), looked up at the observed pairs. The coarse pass evaluates the same
  formula on a random subsample of observations only (characterization sets, which hold
  every pair once, use a larger subsample for their "full" pass too).
* ``UnarySet`` (requantizing Concat): per input, a 256-entry table from
  ``concat.code_requantizer``.
* ``AccSet`` (Conv, Gemm, MatMul): the exact integer accumulators, computed once by the
  engine's kernel on a unit-scale copy of the op; a hypothesis is the engine's
  ``Requantizer`` (after ``acc_bits``/``acc_overflow``) on them.

Every prediction is clamped like the engine's step (type range and a folded Relu/Clip).
``Score``: exact-match share, mean and mean absolute delta (predicted - observed, LSB),
max |delta|.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qprobe.backends.engine import numerics as nx
from qprobe.backends.engine.kernels import KERNELS
from qprobe.backends.engine.kernels.base import QType
from qprobe.backends.engine.kernels.concat import code_requantizer
from qprobe.backends.engine.kernels.eltwise import add_function, build_mul_int
from qprobe.backends.engine.kernels.float_ops import float_group
from qprobe.backends.engine.kernels.quantize import quantize_float
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.requant import Ratio, Requantizer
from qprobe.explain.compose import quantize_numerics
from qprobe.explain.opspec import GroupSpec
from qprobe.explain.space import Candidate

COARSE = 2048
EIGHT_BIT = ("int8", "uint8")


@dataclass(frozen=True)
class Score:
    exact: float
    mean_delta: float
    mean_abs: float
    max_abs: int
    n: int

    @staticmethod
    def of(pred: np.ndarray, obs: np.ndarray, counts: np.ndarray | None = None) -> Score:
        d = pred.astype(np.int64) - obs.astype(np.int64)
        w = np.ones(d.shape, dtype=np.int64) if counts is None else counts
        n = int(w.sum())
        if n == 0:
            return Score(1.0, 0.0, 0.0, 0, 0)
        return Score(float(w[d == 0].sum()) / n, float((w * d).sum()) / n, float((w * np.abs(d)).sum()) / n,
                     int(np.abs(d).max(initial=0)), n)

    @staticmethod
    def combine(scores: Sequence[Score]) -> Score:
        n = sum(s.n for s in scores)
        if n == 0:
            return Score(1.0, 0.0, 0.0, 0, 0)
        return Score(sum(s.exact * s.n for s in scores) / n, sum(s.mean_delta * s.n for s in scores) / n,
                     sum(s.mean_abs * s.n for s in scores) / n, max(s.max_abs for s in scores), n)


class ObservationSet(Protocol):
    name: str

    def coarse(self, cand: Candidate) -> tuple[Score, bytes]: ...

    def full(self, cand: Candidate) -> tuple[Score, bytes]: ...

    def predict(self, cand: Candidate) -> np.ndarray: ...


def _clamped(v: np.ndarray, clamp: tuple[int, int]) -> np.ndarray:
    return np.clip(np.asarray(v).astype(np.int64), clamp[0], clamp[1])


def _float_kernel(gs: GroupSpec, cand: Candidate, args: Sequence[np.ndarray | None]) -> np.ndarray:
    spec = gs.with_numerics(cand.numerics)
    kernel = float_group(spec, KERNELS[spec.op_type].build_float, quantize_numerics(cand.base))
    return np.asarray(kernel(list(args))[0])


def _pair_fn(gs: GroupSpec, cand: Candidate, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    qa, qb = gs.quantized_inputs[0][1], gs.quantized_inputs[1][1]
    if cand.numerics.compute == "float":
        return _clamped(_float_kernel(gs, cand, [a.astype(qa.dtype), b.astype(qb.dtype)]), gs.clamp)
    spec = gs.with_numerics(cand.numerics)
    if spec.op_type == "Mul":  # the kernel tabulates every pair itself
        return _clamped(build_mul_int(spec)([a.astype(qa.dtype), b.astype(qb.dtype)])[0], gs.clamp)
    return _clamped(add_function(spec)(a, b), gs.clamp)


def pair_grid(gs: GroupSpec) -> list[np.ndarray]:
    qa, qb = gs.quantized_inputs[0][1], gs.quantized_inputs[1][1]
    return [g.astype(np.int64) for g in np.meshgrid(np.arange(qa.qmin, qa.qmax + 1), np.arange(qb.qmin, qb.qmax + 1),
                                                     indexing="ij")]


def pair_table(gs: GroupSpec, cand: Candidate, grid: list[np.ndarray] | None = None) -> np.ndarray:
    """The hypothesis on every input pair, flat (index: (a - qmin_a) * 256 + (b - qmin_b))."""
    g = grid if grid is not None else pair_grid(gs)
    return _pair_fn(gs, cand, g[0], g[1]).reshape(-1)


class PairSet:
    """Add/Sub observations with two per-tensor 8-bit inputs."""

    def __init__(self, name: str, gs: GroupSpec, a: np.ndarray, b: np.ndarray, observed: np.ndarray,
                 rng: np.random.Generator, coarse_n: int = COARSE, full_n: int | None = None) -> None:
        self.name, self.gs = name, gs
        qa, qb = gs.quantized_inputs[0][1], gs.quantized_inputs[1][1]
        a_b, b_b, o_b = (x.astype(np.int64).reshape(-1) for x in np.broadcast_arrays(a, b, observed))
        self.lo = gs.spec.out_q.qmin
        joint = ((a_b - qa.qmin) * 256 + (b_b - qb.qmin)) * 256 + (o_b - self.lo)
        keys, self.counts = np.unique(joint, return_counts=True)
        self.pair, self.out = keys // 256, keys % 256 + self.lo
        pick = rng.integers(0, a_b.size, size=min(coarse_n, a_b.size))
        self.ca, self.cb, self.co = a_b[pick], b_b[pick], o_b[pick]
        self.grid = pair_grid(gs)
        self.sub: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if full_n is not None and full_n < a_b.size:  # "full" on a larger subsample, not the whole table
            more = rng.choice(a_b.size, size=full_n, replace=False)
            self.sub = (a_b[more], b_b[more], o_b[more])

    def coarse(self, cand: Candidate) -> tuple[Score, bytes]:
        pred = _pair_fn(self.gs, cand, self.ca, self.cb)
        return Score.of(pred, self.co), pred.astype(np.int16).tobytes()

    def full(self, cand: Candidate) -> tuple[Score, bytes]:
        if self.sub is not None:
            pred = _pair_fn(self.gs, cand, self.sub[0], self.sub[1])
            return Score.of(pred, self.sub[2]), pred.astype(np.int16).tobytes()
        t = pair_table(self.gs, cand, self.grid)
        return Score.of(t[self.pair], self.out, self.counts), t.astype(np.int16).tobytes()

    def predict(self, cand: Candidate) -> np.ndarray:
        return pair_table(self.gs, cand, self.grid)[self.pair]


class UnarySet:
    """Requantizing Concat: per input, observed output codes of each input code."""

    def __init__(self, name: str, gs: GroupSpec, inputs: Sequence[np.ndarray], observed: np.ndarray) -> None:
        self.name, self.gs = name, gs
        axis = int(gs.spec.attr("axis", 0)) % observed.ndim
        bounds = np.cumsum([x.shape[axis] for x in inputs])[:-1]
        self.parts = []
        for (_i, q), x, o in zip(gs.quantized_inputs, inputs, np.split(observed, bounds, axis=axis), strict=True):
            x = np.broadcast_to(x, o.shape)  # a constant input has no sample axis of its own
            keys, counts = np.unique((x.astype(np.int64).reshape(-1) - q.qmin) * 65536
                                     + (o.astype(np.int64).reshape(-1) + 32768), return_counts=True)
            self.parts.append((q, keys // 65536, keys % 65536 - 32768, counts))

    def _table(self, cand: Candidate, q: QType) -> np.ndarray:
        out = self.gs.spec.out_q
        codes = np.arange(q.qmin, q.qmax + 1, dtype=np.int64)
        if cand.numerics.compute == "float":
            v = quantize_float(q.dequantize32(codes), out.scale, out.zero_point, out.dtype,
                               quantize_numerics(cand.base))
        else:
            v = code_requantizer(q, out, cand.numerics)(codes)
        return _clamped(v, self.gs.clamp)

    def full(self, cand: Candidate) -> tuple[Score, bytes]:
        tables = [self._table(cand, q) for q, *_ in self.parts]
        scores = [Score.of(t[code], obs, cnt) for t, (_q, code, obs, cnt) in zip(tables, self.parts, strict=True)]
        return Score.combine(scores), b"".join(t.astype(np.int32).tobytes() for t in tables)

    def coarse(self, cand: Candidate) -> tuple[Score, bytes]:
        return self.full(cand)

    def predict(self, cand: Candidate) -> np.ndarray:
        return np.concatenate([self._table(cand, q)[code] for q, code, _o, _c in self.parts])


def _channel_axis(op_type: str, ndim: int) -> int:
    return ndim - 1 if op_type == "MatMul" else 1


def accumulator(gs: GroupSpec, inputs: Sequence[np.ndarray | None]) -> np.ndarray:
    """The exact int accumulators of a Conv/Gemm/MatMul, from the engine kernel on a unit-scale copy."""
    unit_inputs = []
    for op in gs.spec.inputs:
        q = op.qtype
        unit = None if q is None else QType(np.ones_like(q.scale), q.zero_point, q.dtype, q.axis)
        unit_inputs.append(dataclasses.replace(op, qtype=unit))
    spec = dataclasses.replace(gs.spec, inputs=tuple(unit_inputs), out_qtypes=(QType.make(1.0, 0, "int32"),),
                               numerics=Numerics(scale="exact"))
    builder = KERNELS[spec.op_type].build_int
    assert builder is not None
    return np.asarray(builder(spec)(list(inputs))[0]).astype(np.int64)


class AccSet:
    """Conv/Gemm/MatMul observations as exact accumulators (channels on the last axis)."""

    def __init__(self, name: str, gs: GroupSpec, inputs: Sequence[np.ndarray | None], observed: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.name, self.gs, self.inputs = name, gs, list(inputs)
        acc = accumulator(gs, self.inputs)
        axis = _channel_axis(gs.spec.op_type, acc.ndim)
        self.channels = acc.shape[axis]
        self.acc = np.moveaxis(acc, axis, -1).reshape(-1, self.channels)
        self.obs = np.moveaxis(observed.astype(np.int64), axis, -1).reshape(-1, self.channels)
        pick = rng.integers(0, self.acc.shape[0], size=min(max(COARSE // self.channels, 16), self.acc.shape[0]))
        self.pick = pick
        out = gs.spec.out_q
        self.ratio = Ratio.of([gs.spec.q(0).scale, gs.spec.q(1).scale], [out.scale])

    def _requant(self, cand: Candidate, acc: np.ndarray) -> np.ndarray:
        num, out = cand.numerics, self.gs.spec.out_q
        req = Requantizer(num, self.ratio, out.zero_point, out.qmin, out.qmax)
        return _clamped(req(nx.limit(acc, num.acc_bits, num.acc_overflow), channel_axis=1), self.gs.clamp)

    def _float(self, cand: Candidate) -> np.ndarray:
        y = _float_kernel(self.gs, cand, self.inputs)
        axis = _channel_axis(self.gs.spec.op_type, y.ndim)
        return _clamped(np.moveaxis(y, axis, -1).reshape(-1, self.channels), self.gs.clamp)

    def coarse(self, cand: Candidate) -> tuple[Score, bytes]:
        pred = self._float(cand)[self.pick] if cand.numerics.compute == "float" else \
            self._requant(cand, self.acc[self.pick])
        return Score.of(pred, self.obs[self.pick]), pred.astype(np.int16).tobytes()

    def predict(self, cand: Candidate) -> np.ndarray:
        return self._float(cand) if cand.numerics.compute == "float" else self._requant(cand, self.acc)

    def full(self, cand: Candidate) -> tuple[Score, bytes]:
        pred = self.predict(cand)
        return Score.of(pred, self.obs), pred.astype(np.int16).tobytes()
