"""The ``exact`` profile is the ONNX QDQ semantics computed exactly.

Oracle: a naive, independent implementation in this file (integer loops for the
accumulators, ``fractions.Fraction`` for every real value, round half to even, zero point
added after rounding), applied to single-op models whose scales are powers of two apart
(so that ties are frequent). The op's input codes are taken from the engine's own
QuantizeLinear outputs (data, not arithmetic under test).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from ort_helpers import run_engine, with_q_outputs

from models.generated import random_inputs, random_qdq_model


def _rne(v: Fraction) -> int:
    fl = v.numerator // v.denominator
    rem = v - fl
    return fl + (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1))


def _requant(acc: np.ndarray, ratio: list[Fraction], zp: int, lo: int, hi: int, axis: int) -> np.ndarray:
    out = np.empty(acc.shape, np.int64)
    for idx in np.ndindex(acc.shape):
        r = ratio[idx[axis] % len(ratio)]
        out[idx] = min(max(_rne(int(acc[idx]) * r) + zp, lo), hi)
    return out


class _Model:
    def __init__(self, model: onnx.ModelProto, op: str) -> None:
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.nodes = {n.output[0]: n for n in model.graph.node}
        self.op = next(n for n in model.graph.node if n.op_type == op and n.name != "output_identity")
        outs = set(self.op.output) | {n.output[0] for n in model.graph.node  # a Relu folded with zp = qmin
                                      if n.op_type == "Relu" and n.input[0] in self.op.output}
        self.q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in outs)

    def dq(self, i: int) -> tuple[str, np.ndarray, np.ndarray]:
        d = self.nodes[self.op.input[i]]
        return d.input[0], self.inits[d.input[1]].reshape(-1), self.inits[d.input[2]].reshape(-1).astype(np.int64)

    def attr(self, name: str, default: object) -> object:
        return next((onnx.helper.get_attribute_value(a) for a in self.op.attribute if a.name == name), default)


def _frac(v: object) -> Fraction:
    return Fraction(float(np.float32(v)))


def _conv_oracle(m: _Model, codes: dict[str, np.ndarray]) -> np.ndarray:
    xn, sx, zx = m.dq(0)
    wn, sw, _zw = m.dq(1)
    bn, _sb, _zb = m.dq(2)
    x, w, b = codes[xn].astype(np.int64) - zx[0], m.inits[wn].astype(np.int64), m.inits[bn].astype(np.int64)
    group, strides = int(m.attr("group", 1)), list(m.attr("strides", [1] * (w.ndim - 2)))
    dil = list(m.attr("dilations", [1] * (w.ndim - 2)))
    if m.attr("auto_pad", b"NOTSET") in (b"SAME_UPPER", "SAME_UPPER"):
        tot = [max((-(-s // st) - 1) * st + (k - 1) * d + 1 - s, 0) for s, st, k, d in
               zip(x.shape[2:], strides, w.shape[2:], dil, strict=True)]
        pads = [t // 2 for t in tot] + [t - t // 2 for t in tot]
    else:
        pads = list(m.attr("pads", [0] * (2 * (w.ndim - 2))))
    nd = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    out_sp = [(xp.shape[2 + i] - (w.shape[2 + i] - 1) * dil[i] - 1) // strides[i] + 1 for i in range(nd)]
    n, mo, cg = x.shape[0], w.shape[0], w.shape[1]
    acc = np.zeros((n, mo, *out_sp), np.int64)
    for o in range(mo):
        g = o // (mo // group)
        for pos in np.ndindex(*out_sp):
            for k in np.ndindex(*w.shape[2:]):
                src = tuple(pos[i] * strides[i] + k[i] * dil[i] for i in range(nd))
                acc[(slice(None), o, *pos)] += xp[(slice(None), slice(g * cg, (g + 1) * cg),
                                                   *src)] @ w[(o, slice(None), *k)]
    acc += b.reshape(1, -1, *(1,) * nd)
    sy, zy = m.inits[m.q.input[1]], int(m.inits[m.q.input[2]])
    ratio = [_frac(sx[0]) * _frac(s) / _frac(sy) for s in sw]
    return _requant(acc, ratio, zy, -128, 127, 1)


def _add_oracle(m: _Model, codes: dict[str, np.ndarray]) -> np.ndarray:
    (an, sa, za), (bn, sb, zb) = m.dq(0), m.dq(1)
    a, b = codes[an].astype(np.int64) - za[0], codes[bn].astype(np.int64) - zb[0]
    sy, zy = _frac(m.inits[m.q.input[1]]), int(m.inits[m.q.input[2]])
    sign = -1 if m.op.op_type == "Sub" else 1
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), np.int64)
    for idx in np.ndindex(out.shape):
        if m.op.op_type == "Mul":
            v = int(a[idx]) * int(b[idx]) * _frac(sa[0]) * _frac(sb[0]) / sy
        else:
            v = (int(a[idx]) * _frac(sa[0]) + sign * int(b[idx]) * _frac(sb[0])) / sy
        out[idx] = min(max(_rne(v) + zy, -128), 127)
    return out


ORACLES = {"Conv": _conv_oracle, "DepthwiseConv": _conv_oracle, "Add": _add_oracle, "Sub": _add_oracle,
           "Mul": _add_oracle}


@pytest.mark.parametrize("op", sorted(ORACLES))
@pytest.mark.parametrize("seed", range(3))
def test_exact_profile_matches_rational_semantics(op: str, seed: int) -> None:
    model = with_q_outputs(random_qdq_model(seed, ops=(op,), num_ops=1, pow2_share=1.0, channels=3))
    feeds = random_inputs(model, 2, seed)
    got = run_engine(model, feeds, "exact")
    m = _Model(model, "Conv" if op == "DepthwiseConv" else op)
    want = ORACLES[op](m, got)
    np.testing.assert_array_equal(got[m.q.output[0]].astype(np.int64), want)
