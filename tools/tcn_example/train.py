"""Training the example TCN: a small numpy backprop (Adam, MSE on ln ppm), deterministic.

Owns the network's float forward and backward passes as ``tcn_example.build``
trains them, the initialisation, the Adam loop and the per-channel rescaling that
leaves predictions unchanged. It knows the architecture of
``tcn_example.graph`` (same weight names and layouts: Conv ``[out, in, 1, 3]``,
tap ``k`` reads ``x[t - (2 - k) d]``; Gemm ``[out, in]``) but not ONNX.

**Only the last step is computed.** The loss reads the last time step, so block ``i``
(dilation ``2**i``) needs its input only at the steps ``t = 63 (mod 2**i)``: on those
the dilated conv is an ordinary 3-tap conv, and every block halves the sequence (64, 32,
..., 2 steps; 126 instead of 384). The result is exactly the ONNX graph's ``features``.

Float64 and one ``numpy.random.Generator`` (initialisation and minibatch order):
the same seed gives the same weights on the same machine, and rounding differences
between machines stay far below what the int8 weights can see.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tcn_example.graph import CHANNELS, DILATIONS, HIDDEN

Weights = dict[str, np.ndarray]
Cache = list[tuple[np.ndarray, np.ndarray, np.ndarray]]
Extra = tuple[np.ndarray, np.ndarray, np.ndarray]
HEAD_UNITS = 64


@dataclass(frozen=True)
class TrainConfig:
    """Adam hyper-parameters of one training run."""

    epochs: int
    batch: int = 64
    lr: float = 3e-3
    lr_end: float = 3e-4  # cosine decay to this
    weight_decay: float = 1e-4  # L2 on weights (not biases), added to the gradient
    clip: float = 5.0  # global gradient-norm clip
    block0_penalty: float = 0.0  # weight of :func:`_block0_penalty` (0: off)
    block0_ratios: tuple[float, float] = (2.05, 1.06)  # its targets: projection / Add max, conv / Add max


def init_weights(rng: np.random.Generator, target_mean: float) -> Weights:
    """He-style dense initialisation; residual convs at half gain (every block contributes from the start)."""
    w: Weights = {
        "input_proj.weight": rng.normal(0.0, 1.0 / np.sqrt(CHANNELS), (HIDDEN, CHANNELS, 1, 1)),
        "input_proj.bias": np.zeros(HIDDEN),
    }
    for i in range(len(DILATIONS)):
        w[f"block{i}_conv.weight"] = rng.normal(0.0, 0.5 * np.sqrt(2.0 / (3 * HIDDEN)), (HIDDEN, HIDDEN, 1, 3))
        w[f"block{i}_conv.bias"] = rng.normal(0.0, 0.05, HIDDEN)
    w["head_gemm1.weight"] = rng.normal(0.0, np.sqrt(2.0 / HIDDEN), (HEAD_UNITS, HIDDEN))
    w["head_gemm1.bias"] = rng.normal(0.0, 0.1, HEAD_UNITS)
    w["head_gemm2.weight"] = rng.normal(0.0, 0.1 / np.sqrt(HEAD_UNITS), (1, HEAD_UNITS))
    w["head_gemm2.bias"] = np.array([target_mean])
    return w


def as_sequences(windows: np.ndarray) -> np.ndarray:
    """``[n, C, 1, T]`` windows -> ``[n, T, C]`` float64 (time-major, channels last)."""
    return np.ascontiguousarray(windows[:, :, 0, :].transpose(0, 2, 1), dtype=np.float64)


def projection(w: Weights, u: np.ndarray) -> np.ndarray:
    """``input_proj`` on ``[n, T, C]`` sequences: ``[n, T, H]``."""
    return u @ w["input_proj.weight"][:, :, 0, 0].T + w["input_proj.bias"]


def _taps(h: np.ndarray) -> np.ndarray:
    """``[n, L, H]`` -> ``[n, L, 3H]``: x[s - 2], x[s - 1], x[s] (zeros before the start)."""
    p = np.concatenate([np.zeros_like(h[:, :2]), h], axis=1)
    n = h.shape[1]
    return np.concatenate([p[:, 0:n], p[:, 1 : n + 1], p[:, 2 : n + 2]], axis=2)


def _kernel(w: np.ndarray) -> np.ndarray:
    """Conv weight ``[out, in, 1, 3]`` -> matrix ``[3 in, out]`` matching :func:`_taps`."""
    return w[:, :, 0, :].transpose(2, 1, 0).reshape(3 * w.shape[1], w.shape[0])


def block_conv(w: Weights, i: int, h: np.ndarray) -> np.ndarray:
    """Block ``i``'s causal conv on its (subsampled) input ``[n, L, H]``."""
    return _taps(h) @ _kernel(w[f"block{i}_conv.weight"]) + w[f"block{i}_conv.bias"]


def trunk(w: Weights, h: np.ndarray, first: int = 0) -> tuple[np.ndarray, Cache]:
    """Blocks ``first..5`` on block ``first``'s input ``[n, 64 / 2**first, H]``: features ``[n, H]``."""
    cache: Cache = []
    for i in range(first, len(DILATIONS)):
        y = h + block_conv(w, i, h)
        cache.append((h, y, _taps(h)))
        h = np.maximum(y, 0.0)[:, 1::2] if i < len(DILATIONS) - 1 else np.maximum(y, 0.0)[:, -1]
    return h, cache


def head(w: Weights, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden units (post-Relu) and prediction ``[n]`` from features ``[n, H]``."""
    a = np.maximum(f @ w["head_gemm1.weight"].T + w["head_gemm1.bias"], 0.0)
    return a, (a @ w["head_gemm2.weight"].T)[:, 0] + w["head_gemm2.bias"][0]


def _trunk_backward(w: Weights, cache: Cache, df: np.ndarray, first: int, g: Weights,
                    extra: Extra | None = None) -> np.ndarray:
    """Accumulate block gradients into ``g``; return the gradient at block ``first``'s input.

    ``extra`` adds gradients at block 0's Add output (pre-Relu), conv output and input.
    """
    dh = df
    for i in range(len(DILATIONS) - 1, first - 1, -1):
        h, y, taps = cache[i - first]
        dr = np.zeros_like(y)
        if i < len(DILATIONS) - 1:
            dr[:, 1::2] = dh
        else:
            dr[:, -1] = dh
        dy = dr * (y > 0.0)
        ey, ec, eh = extra if extra is not None and i == 0 else (0.0, 0.0, 0.0)
        dy = dy + ey
        dc = dy + ec
        flat = dc.reshape(-1, HIDDEN)
        dk = taps.reshape(-1, 3 * HIDDEN).T @ flat
        g[f"block{i}_conv.weight"] = dk.reshape(3, HIDDEN, HIDDEN).transpose(2, 1, 0)[:, :, None, :]
        g[f"block{i}_conv.bias"] = flat.sum(axis=0)
        dtaps = dc @ _kernel(w[f"block{i}_conv.weight"]).T
        n = h.shape[1]
        dp = np.zeros((h.shape[0], n + 2, HIDDEN))
        for k in range(3):
            dp[:, k : k + n] += dtaps[:, :, k * HIDDEN : (k + 1) * HIDDEN]
        dh = dy + dp[:, 2:] + eh
    return dh


def _block0_penalty(h: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> tuple[float, Extra]:
    """Penalty on block 0's range ratios in the batch, and its gradients at (Add, conv, input).

    With ``P`` the projection's width, ``M`` the Add's max (the post-Relu range) and ``C``
    the conv's width, ``lam * ((ln P/M - ln r0)^2 + (ln C/M - ln r1)^2)``: training keeps
    block 0 where MinMax calibration gives it the target scale ratios, so the exact
    adjustment afterwards (``tcn_example.build.tune_block0``) is small. Maxima pass
    their gradient to the one element that attains them.
    """
    lam, (r0, r1) = cfg.block0_penalty, cfg.block0_ratios
    c = y - h
    p_width = max(float(h.max()), 0.0) - min(float(h.min()), 0.0)
    c_width = max(float(c.max()), 0.0) - min(float(c.min()), 0.0)
    m = max(float(y.max()), 1e-6)
    e0, e1 = np.log(p_width / m / r0), np.log(c_width / m / r1)
    ey, ec, eh = np.zeros_like(y), np.zeros_like(y), np.zeros_like(y)
    ey.flat[np.argmax(y)] = -2.0 * lam * (e0 + e1) / m
    ec.flat[np.argmax(c)] += 2.0 * lam * e1 / c_width
    ec.flat[np.argmin(c)] -= 2.0 * lam * e1 / c_width
    eh.flat[np.argmax(h)] += 2.0 * lam * e0 / p_width
    eh.flat[np.argmin(h)] -= 2.0 * lam * e0 / p_width
    return float(lam * (e0**2 + e1**2)), (ey, ec, eh)


def loss_and_grads(w: Weights, x: np.ndarray, y: np.ndarray, first: int,
                   cfg: TrainConfig | None = None) -> tuple[float, Weights]:
    """MSE (plus ``cfg``'s block-0 penalty) and its gradients; ``x`` is block ``first``'s input
    (``first = 0``: the raw sequences)."""
    h = projection(w, x) if first == 0 else x
    f, cache = trunk(w, h, first)
    penalty, extra = 0.0, None
    if first == 0 and cfg is not None and cfg.block0_penalty > 0.0:
        penalty, extra = _block0_penalty(cache[0][0], cache[0][1], cfg)
    a, pred = head(w, f)
    err = pred - y
    dpred = 2.0 * err / len(y)
    g: Weights = {"head_gemm2.weight": (dpred @ a)[None, :], "head_gemm2.bias": np.array([dpred.sum()])}
    da = dpred[:, None] * w["head_gemm2.weight"] * (a > 0.0)
    g["head_gemm1.weight"], g["head_gemm1.bias"] = da.T @ f, da.sum(axis=0)
    dh = _trunk_backward(w, cache, da @ w["head_gemm1.weight"], first, g, extra)
    if first == 0:
        g["input_proj.weight"] = (dh.reshape(-1, HIDDEN).T @ x.reshape(-1, CHANNELS))[:, :, None, None]
        g["input_proj.bias"] = dh.sum(axis=(0, 1))
    return float(np.mean(err**2)) + penalty, g


def train(w: Weights, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, rng: np.random.Generator,
          *, first: int = 0, frozen: Iterable[str] = ()) -> Weights:
    """Adam on MSE from ``w`` (a copy is returned); ``frozen`` weights stay as they are."""
    w = {k: v.copy() for k, v in w.items()}
    names = [k for k in sorted(w) if k not in set(frozen)]
    m = {k: np.zeros_like(w[k]) for k in names}
    v = {k: np.zeros_like(w[k]) for k in names}
    steps_per_epoch = max(1, len(y) // cfg.batch)
    total, step = cfg.epochs * steps_per_epoch, 0
    for _ in range(cfg.epochs):
        order = rng.permutation(len(y))
        for b in range(steps_per_epoch):
            idx = np.sort(order[b * cfg.batch : (b + 1) * cfg.batch])
            _, g = loss_and_grads(w, x[idx], y[idx], first, cfg)
            norm = np.sqrt(sum(float(np.sum(g[k] ** 2)) for k in names))
            scale = min(1.0, cfg.clip / max(norm, 1e-12))
            step += 1
            lr = cfg.lr_end + 0.5 * (cfg.lr - cfg.lr_end) * (1.0 + np.cos(np.pi * step / total))
            for k in names:
                gk = g[k] * scale + (cfg.weight_decay * w[k] if k.endswith("weight") else 0.0)
                m[k] = 0.9 * m[k] + 0.1 * gk
                v[k] = 0.999 * v[k] + 0.001 * gk * gk
                mh, vh = m[k] / (1.0 - 0.9**step), v[k] / (1.0 - 0.999**step)
                w[k] = w[k] - lr * mh / (np.sqrt(vh) + 1e-8)
    return w


def rescale_channels(w: Weights, s: np.ndarray) -> Weights:
    """``w`` with residual channel ``j`` scaled by ``s[j] > 0`` everywhere: no prediction changes.

    Every block is positively homogeneous per channel, ``relu(Sx + S conv(S^-1 Sx)) =
    S relu(x + conv(x))`` for a positive diagonal ``S``: input_proj's rows, each conv's
    output rows and biases scale by ``s``, its input columns by ``1 / s``, and so do
    head_gemm1's columns.
    """
    out = dict(w)
    out["input_proj.weight"] = w["input_proj.weight"] * s[:, None, None, None]
    out["input_proj.bias"] = w["input_proj.bias"] * s
    for i in range(len(DILATIONS)):
        k = f"block{i}_conv"
        out[f"{k}.weight"] = w[f"{k}.weight"] * s[:, None, None, None] / s[None, :, None, None]
        out[f"{k}.bias"] = w[f"{k}.bias"] * s
    out["head_gemm1.weight"] = w["head_gemm1.weight"] / s[None, :]
    return out


def predict(w: Weights, x: np.ndarray) -> np.ndarray:
    """Float prediction ``[n]`` on raw sequences ``[n, T, C]``."""
    return head(w, trunk(w, projection(w, x))[0])[1]
