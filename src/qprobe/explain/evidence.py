"""Model-free evidence: what the target's output codes say, independently of any hypothesis.

* ``linear_fit``: for Add/Sub, the effective coefficient of each operand and the offset
  by least squares, ``out - zo ~ alpha*(a - za) + beta*(b - zb) + gamma``, next to the
  expected scale ratios; for a requantizing Concat, per input; for Mul, the effective
  multiplier of the product; for Conv/Gemm/MatMul,
  the effective gain and offset per output channel against the exact real result
  ``acc * sx*sw/sy``, and the residual's shape (clipping at a level; a constant
  half-LSB shift: a rounding mode). Outputs at the clamp are left out of the fits.
* ``Pattern``: the delta histogram (reference - target, LSB), the share of +-1 deltas and
  of deltas at exact rounding ties, whether the same inputs always give the same output
  (``consistency``), and how the error rate depends on magnitude, on the position
  (tensor borders) and on the sample index.
* ``sentence``: one line, e.g. "the target behaves as if operand 1 were scaled by 1.03
  instead of 2.05".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qprobe.explain.evaluate import accumulator
from qprobe.explain.observe import Observation
from qprobe.explain.opspec import GroupSpec

FIT_POINTS = 200_000


def _lsq(columns: Sequence[np.ndarray], y: np.ndarray) -> list[float]:
    x = np.stack([*columns, np.ones_like(y)], axis=1).astype(np.float64)
    if y.size < x.shape[1]:
        return [float("nan")] * x.shape[1]
    return [float(v) for v in np.linalg.lstsq(x, y.astype(np.float64), rcond=None)[0]]


def _inside(obs: np.ndarray, clamp: tuple[int, int]) -> np.ndarray:
    return (obs > clamp[0]) & (obs < clamp[1])


def _thin(mask: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(mask)
    return idx if idx.size <= FIT_POINTS else idx[:: idx.size // FIT_POINTS + 1]


def _operands(obs: Observation, gs: GroupSpec) -> list[tuple[str, np.ndarray, float, int]]:
    """(name, codes broadcast to the output, expected ratio, zero point) per quantized operand."""
    out = gs.spec.out_q
    sign = -1.0 if gs.spec.op_type == "Sub" else 1.0
    ops = []
    for k, (i, q) in enumerate(gs.quantized_inputs):
        name = gs.spec.inputs[i].name or f"constant {i}"
        x = np.broadcast_to(gs.operand(i, obs.inputs), obs.observed.shape)
        ops.append((name, x, (sign if k == 1 else 1.0) * float(q.s) / float(out.s), q.z))
    return ops


def _fit(cols: Sequence[np.ndarray], y: np.ndarray, clamp: tuple[int, int], zo: int) -> list[float]:
    """Least squares of ``y - zo`` on ``cols`` over the outputs inside the clamp, refitted up to three
    times without the outliers (residual above max(2 LSB, 4 x the median)) while at most 15% are
    dropped: sparse corruption does not bend the coefficients, a coefficient error is no outlier."""
    idx = _thin(_inside(y, clamp))
    x = [c[idx].astype(np.float64) for c in cols]
    t = y[idx].astype(np.float64) - zo
    keep = np.ones(t.size, dtype=bool)
    coef = _lsq([v[keep] for v in x], t[keep])
    for _ in range(3):
        if not all(np.isfinite(coef)) or not t.size:
            break
        resid = np.abs(t - sum(c * v for c, v in zip(coef[:-1], x, strict=True)) - coef[-1])
        ok = resid <= max(2.0, 4.0 * float(np.median(resid)))
        if ok.sum() < 0.85 * t.size or np.array_equal(ok, keep):
            break
        keep = ok
        coef = _lsq([v[keep] for v in x], t[keep])
    return coef


def eltwise_fit(obs: Observation, gs: GroupSpec) -> dict[str, Any]:
    ops = _operands(obs, gs)
    zo = gs.spec.out_q.z
    cols = [x.reshape(-1).astype(np.int64) - z for _n, x, _r, z in ops]
    got = _fit(cols, obs.observed.reshape(-1), gs.clamp, zo)
    ref = _fit(cols, obs.expected.reshape(-1), gs.clamp, zo)
    points = int(_inside(obs.observed, gs.clamp).sum())
    return {"kind": "operands", "points": points, "operands": [
        {"tensor": n, "expected": r, "effective": got[k],
         "reference_fit": ref[k]} for k, (n, _x, r, _z) in enumerate(ops)
    ], "offset": {"effective": got[-1], "reference_fit": ref[-1], "expected": 0.0}}


def concat_fit(obs: Observation, gs: GroupSpec) -> dict[str, Any]:
    out = gs.spec.out_q
    axis = int(gs.spec.attr("axis", 0)) % obs.observed.ndim
    xs = [gs.operand(i, obs.inputs) for i, _q in gs.quantized_inputs]
    names = [gs.spec.inputs[i].name for i, _q in gs.quantized_inputs]
    bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
    parts = zip(gs.quantized_inputs, np.split(obs.observed, bounds, axis=axis),
                np.split(obs.expected, bounds, axis=axis), names, xs, strict=True)
    rows, points = [], 0
    for (_i, q), o, e, n, x in parts:
        col = [np.broadcast_to(x, o.shape).reshape(-1).astype(np.int64) - q.z]
        got, ref = _fit(col, o.reshape(-1), gs.clamp, out.z), _fit(col, e.reshape(-1), gs.clamp, out.z)
        points += int(_inside(o, gs.clamp).sum())
        rows.append({"tensor": n, "expected": float(q.s) / float(out.s), "effective": got[0], "reference_fit": ref[0],
                     "offset": got[1], "requantized": not q.same_as(out)})
    return {"kind": "operands", "points": points, "operands": rows,
            "offset": {"effective": float(np.mean([r["offset"] for r in rows])), "expected": 0.0}}


def exact_real(obs: Observation, gs: GroupSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """The exact real output (in codes, before rounding) the op should produce, and per element
    a key of its inputs (the same key: the same inputs), where known."""
    out = gs.spec.out_q
    if gs.op_class == "mul" and len(gs.quantized_inputs) == 2:
        (_n, a, _r, za), (_m, b, _s, zb) = _operands(obs, gs)
        qa, qb = gs.quantized_inputs[0][1], gs.quantized_inputs[1][1]
        mult = float(qa.s) * float(qb.s) / float(out.s)
        key = (a.astype(np.int64) + 32768) * 65536 + (b.astype(np.int64) + 32768)
        return mult * (a.astype(np.float64) - za) * (b.astype(np.float64) - zb) + out.z, key
    if gs.op_class == "eltwise" and len(gs.quantized_inputs) == 2:
        ops = _operands(obs, gs)
        real = sum(r * (x.astype(np.float64) - z) for _n, x, r, z in ops) + out.z
        key = (ops[0][1].astype(np.int64) + 32768) * 65536 + (ops[1][1].astype(np.int64) + 32768)
        return np.asarray(real), key
    if gs.op_class in ("conv", "gemm"):
        spec = gs.spec
        acc = accumulator(gs, [obs.inputs[op.name] if op.const is None and op.name else op.const
                               for op in spec.inputs])
        m = spec.q(0).scale.astype(np.float64) * spec.q(1).scale.astype(np.float64) / float(out.s)
        axis = acc.ndim - 1 if spec.op_type == "MatMul" else 1
        shape = [1] * acc.ndim
        shape[axis] = -1
        chan = np.broadcast_to(np.arange(acc.shape[axis]).reshape(shape), acc.shape)
        real = acc.astype(np.float64) * (m.reshape(shape) if m.size > 1 else m.reshape(())) + out.z
        return real, acc * 65536 + chan
    return None


def _plateaus(o: np.ndarray, r: np.ndarray, clamp: tuple[int, int]) -> tuple[int | None, int | None]:
    """Levels where a channel's output stops while the exact value goes on: (high, low)."""
    hi, lo = int(o.max(initial=clamp[0])), int(o.min(initial=clamp[1]))
    at_hi = (o == hi) & (r > hi + 1)
    at_lo = (o == lo) & (r < lo - 1)
    return (hi if hi < clamp[1] and at_hi.sum() >= max(2, 1e-3 * o.size) else None,
            lo if lo > clamp[0] and at_lo.sum() >= max(2, 1e-3 * o.size) else None)


def channel_fit(obs: Observation, gs: GroupSpec, real: np.ndarray) -> dict[str, Any]:
    axis = obs.observed.ndim - 1 if gs.spec.op_type == "MatMul" else 1
    o = np.moveaxis(obs.observed.astype(np.float64), axis, -1).reshape(-1, real.shape[axis])
    r = np.moveaxis(real, axis, -1).reshape(o.shape)
    zo = gs.spec.out_q.z
    gains, offsets, clipped = [], [], []
    keep_all = np.zeros(o.shape, dtype=bool)
    for c in range(o.shape[1]):
        hi, lo = _plateaus(o[:, c], r[:, c], gs.clamp)
        keep = _inside(o[:, c], gs.clamp) & (o[:, c] != (hi if hi is not None else np.inf)) \
            & (o[:, c] != (lo if lo is not None else -np.inf))
        keep_all[:, c] = keep
        g = _lsq([r[keep, c] - zo], o[keep, c] - zo)
        gains.append(g[0])
        offsets.append(g[1])
        if hi is not None or lo is not None:
            clipped.append({"channel": c, "high": hi, "low": lo})
    resid = float(np.mean(o[keep_all] - r[keep_all])) if keep_all.any() else 0.0
    return {"kind": "channels", "gains": gains, "offsets": offsets, "mean_residual": resid, "clipped": clipped,
            "channels": int(o.shape[1])}


def mul_fit(obs: Observation, gs: GroupSpec) -> dict[str, Any]:
    """``out - zo ~ mu * (a - za) * (b - zb) + gamma``: the effective product multiplier."""
    (n, a, _r, za), (m, b, _s, zb) = _operands(obs, gs)
    qa, qb, out = gs.quantized_inputs[0][1], gs.quantized_inputs[1][1], gs.spec.out_q
    col = [(a.astype(np.int64) - za).reshape(-1) * (b.astype(np.int64) - zb).reshape(-1)]
    got = _fit(col, obs.observed.reshape(-1), gs.clamp, out.z)
    ref = _fit(col, obs.expected.reshape(-1), gs.clamp, out.z)
    return {"kind": "operands", "points": int(_inside(obs.observed, gs.clamp).sum()), "operands": [
        {"tensor": f"{n} * {m}", "expected": float(qa.s) * float(qb.s) / float(out.s), "effective": got[0],
         "reference_fit": ref[0]}], "offset": {"effective": got[1], "reference_fit": ref[1], "expected": 0.0}}


def linear_fit(obs: Observation, gs: GroupSpec) -> dict[str, Any]:
    if gs.op_class == "mul" and len(gs.quantized_inputs) == 2:
        return mul_fit(obs, gs)
    if gs.op_class == "eltwise" and len(gs.quantized_inputs) == 2:
        return eltwise_fit(obs, gs)
    if gs.op_class == "concat":
        return concat_fit(obs, gs)
    found = exact_real(obs, gs)
    if found is not None:
        return channel_fit(obs, gs, found[0])
    return {"kind": "none", "reason": f"no linear model for {gs.spec.op_type}"}


def sentence(fit: dict[str, Any], op_type: str) -> str:
    if fit["kind"] == "operands":
        return _operand_sentence(fit, op_type)
    if fit["kind"] == "channels":
        return _channel_sentence(fit)
    return f"no model-free fit for {op_type}"


def _operand_sentence(fit: dict[str, Any], op_type: str) -> str:
    rows = [r for r in fit["operands"] if r.get("requantized", True) and np.isfinite(r["effective"])]
    if not rows:
        return f"the {op_type} output could not be fitted (every output at the clamp)"
    dev = [abs(r["effective"] / r["expected"] - 1) if r["expected"] else abs(r["effective"]) for r in rows]
    k = int(np.argmax(dev))
    r = rows[k]
    idx = fit["operands"].index(r) + 1
    offset = fit["offset"]["effective"]
    if dev[k] > 0.01:
        off = f", offset by {offset:+.2f} LSB" if abs(offset) > 0.5 else ""
        eff = r["effective"] if abs(r["effective"]) > 1e-9 else 0.0
        return (f"the target behaves as if operand {idx} ({r['tensor']}) were scaled by {eff:.3g} "
                f"instead of {r['expected']:.3g}{off}")
    if abs(offset) > 0.25:
        return (f"the target's coefficients match the scale ratios within 1%, but its outputs are offset by "
                f"{offset:+.2f} LSB")
    return "the target's effective coefficients match the expected scale ratios within 1%: not a coefficient error"


def _channel_sentence(fit: dict[str, Any]) -> str:
    parts = []
    clip = fit["clipped"]
    if clip:
        c = clip[0]
        lv = "..".join(str(v) for v in (c["low"], c["high"]) if v is not None)
        parts.append(f"{len(clip)} of {fit['channels']} channels stop short of the exact result (channel "
                     f"{c['channel']} "
                     f"at code {lv}): accumulator or output saturation")
    gains = np.asarray([g if np.isfinite(g) else 1.0 for g in fit["gains"]])
    if gains.size and np.abs(gains - 1).max() > 0.01:
        c = int(np.argmax(np.abs(gains - 1)))
        parts.append(f"the target behaves as if channel {c}'s requantization multiplier were scaled by "
                     f"{gains[c]:.3g} (median gain over channels {np.median(gains):.3g})")
    if abs(fit["mean_residual"] + 0.5) < 0.15 or abs(fit["mean_residual"] - 0.5) < 0.15:
        parts.append(f"a constant {fit['mean_residual']:+.2f} LSB shift: it truncates instead of rounding")
    if not parts:
        return "the per-channel gains match the expected multipliers within 1%: not a multiplier error"
    return "; ".join(parts)
