"""The bundled example: an int8 QDQ TCN forecasting ln(gas concentration), like the motivating case.

Owns the example's closed-form fit, the build that quantizes and evaluates it, and the
files it ships. Deterministic and offline: numpy for the fit; the network, onnxruntime
(features, calibration, reference outputs) and the quantization recipe are in
:mod:`qprobe.examples.tcn_graph` (its public names are re-exported here); the data come
from :mod:`qprobe.examples.gas_signal`.

**Weights**, structured and fit in closed form (no training loop):
``input_proj`` emits the 8 principal components of the channels, twice, each as ``+u``
and ``-u`` (peak 4 on the training windows): after a Relu a pair still carries the sign,
and orthogonal components keep small inter-sensor differences (a fast minus a slow
sensor is a time derivative) at full int8 resolution. ``block0`` is a per-channel
two-tap average ``(1 - a) x[t] + a x[t-1]``; ``block1..5`` are per-channel normalised
moving averages (rate 0 for the first copy, 0.75 for the second; block i multiplies by
``(1 + g z^-d) / (1 + g)``, g = r**d), non-negative so their Relus never clip. Head:
ridge regression from the 32 last-step features to ln(ppm) at lags 0, 3, 6, 12 gives a
state; ``head_gemm1`` + Relu are hinge units on the state and its slopes (each peaking
at 4, to share one int8 scale); ``head_gemm2`` is a ridge regression on the units.

**The block-0 ratio, and how it is reached.** ORT's QDQ quantizer removes a Relu that
follows an Add, so ``block0_add``'s output is quantized over the post-Relu range [0, M],
while its first operand, the projection ``x0 = +-u + c``, spans [-m + c, m + c]: the
scale ratio is 2m / M. We reach 2.05 (band [2.0, 2.1]; the forum case: 0.099/0.049 =
2.02) **through the weights, not** ``TensorQuantOverrides``: the projection bias ``c``
is set by bisection on the calibration windows (M moves with c, 2m does not), and the
block-0 tap ``a`` so that the other operand (the conv output, whose parameters the
Slice shares) gets the forum's 1.06. So the int8 model comes out of a plain, default
``quantize_static`` call, as a user's would; overrides would force the scales and hide
where the ratio comes from.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from qprobe.errors import QprobeError
from qprobe.examples.gas_signal import (
    ExampleData,
    RegressionMetrics,
    example_data,
    history,
    regression_metrics,
)
from qprobe.examples.tcn_graph import (
    CHANNELS,
    DILATIONS,
    HIDDEN,
    N_CALIBRATION,
    OPSET,
    QUANTIZATION,
    WINDOW,
    AddScales,
    block0_add_ratios,
    build_tcn_graph,
    quantize,
    run_model,
)
from qprobe.fileio import atomic_save_npz, atomic_write_bytes

__all__ = [
    "CHANNELS", "DILATIONS", "FILES", "HEAD_UNITS", "HIDDEN", "HORIZON", "LAGS", "N_CALIBRATION",
    "OPSET", "PACKAGED_INPUTS", "PEAK", "QUANTIZATION", "RATES", "RATIO_BAND", "TARGET_OTHER_RATIO",
    "TARGET_RATIO", "WINDOW", "AddScales", "TcnExample", "Weights", "block0_add_ratios", "build_tcn_example",
    "build_tcn_graph", "environment", "fit_head", "fit_tcn_weights", "packaged_example_dir", "quantize",
    "run_model", "tune_block0",
]

HEAD_UNITS, HORIZON = 64, 4
RATES = (0.0,) * CHANNELS + (0.75,) * CHANNELS  # EMA rate of each signal: as is, and smoothed
LAGS = (0, 3, 6, 12)
PEAK = 4.0  # every projected signal and head unit peaks here on the training windows
TARGET_RATIO, TARGET_OTHER_RATIO, RATIO_BAND = 2.05, 1.06, (2.0, 2.1)
PACKAGED_INPUTS = 64  # validation windows in the shipped copy (keeps it small)
FILES = {
    "int8_model": "tcn_int8.onnx", "float_model": "tcn_float.onnx", "inputs": "tcn_inputs.npz",
    "calibration": "tcn_calibration.npz", "truth": "tcn_truth.npz", "golden": "tcn_golden.npz",
    "metadata": "tcn_example.json",
}
Weights = dict[str, np.ndarray]


@dataclass(frozen=True)
class TcnExample:
    """What :func:`build_tcn_example` wrote (``paths`` by FILES key) and measured."""

    out_dir: Path
    seed: int
    paths: dict[str, Path]
    n_inputs: int
    n_validation: int
    float_metrics: RegressionMetrics
    int8_metrics: RegressionMetrics
    persistence_metrics: RegressionMetrics
    block0: AddScales

    @property
    def int8_model_path(self) -> Path:
        return self.paths["int8_model"]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "n_inputs": self.n_inputs, "n_validation": self.n_validation,
                "metrics": {"float": self.float_metrics.to_dict(), "int8": self.int8_metrics.to_dict(),
                            "persistence": self.persistence_metrics.to_dict()},
                "block0_add": self.block0.to_dict()}

    @classmethod
    def load(cls, directory: Path) -> TcnExample:
        """The example written in ``directory`` (its numbers come from tcn_example.json)."""
        try:
            d = json.loads((Path(directory) / FILES["metadata"]).read_text())
            m, b = {k: RegressionMetrics(**v) for k, v in d["metrics"].items()}, d["block0_add"]
            block0 = AddScales(b["node"], tuple(b["operand_scales"]), b["output_scale"])  # type: ignore[arg-type]
            return cls(Path(directory), d["seed"], {k: Path(directory) / v for k, v in FILES.items()}, d["n_inputs"],
                       d["n_validation"], m["float"], m["int8"], m["persistence"], block0)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise QprobeError(f"{directory} holds no readable TCN example ({e}); rebuild it with build_tcn_example") from e

    def summary(self) -> str:
        f, i, p, b = self.float_metrics, self.int8_metrics, self.persistence_metrics, self.block0
        return (
            f"TCN example (seed {self.seed}) in {self.out_dir}\n"
            f"  RMSE / R2 of ln(ppm) on {self.n_validation} validation windows: float {f.rmse:.4f} / {f.r2:.4f}, "
            f"int8 {i.rmse:.4f} / {i.r2:.4f}, persistence {p.rmse:.4f} / {p.r2:.4f}\n"
            f"  block0_add scales {b.operand_scales[0]:.5f}, {b.operand_scales[1]:.5f} -> {b.output_scale:.5f}: "
            f"ratios {b.ratios[0]:.3f}, {b.ratios[1]:.3f}"
        )


# --------------------------------------------------------------------------- trunk weights


def _projection(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair rows ``[+u; -u]`` ``[32, C]`` of principal components (peak PEAK), and their EMA rates."""
    x = train[:, :, 0, :].transpose(0, 2, 1).reshape(-1, CHANNELS).astype(np.float64)
    vectors = np.linalg.eigh(np.cov(x.T))[1][:, ::-1].T
    vectors *= np.sign(vectors[np.arange(CHANNELS), np.abs(vectors).argmax(axis=1)])[:, None]
    rows = np.vstack([vectors, vectors])
    rows *= (PEAK / np.abs(x @ rows.T).max(axis=0))[:, None]
    return np.vstack([rows, -rows]), np.array(RATES + RATES)


def _diagonal_taps(delayed: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Conv weight ``[H, H, 1, 3]``: y_j = delayed_j * x_j[t - d] + current_j * x_j[t]."""
    w = np.zeros((HIDDEN, HIDDEN, 1, 3))
    j = np.arange(HIDDEN)
    w[j, j, 0, 1], w[j, j, 0, 2] = delayed, current
    return w


def _trunk_weights(proj: np.ndarray, rates: np.ndarray, a: float, c: float) -> Weights:
    w: Weights = {
        "input_proj.weight": proj[:, :, None, None], "input_proj.bias": np.full(HIDDEN, c),
        "block0_conv.weight": _diagonal_taps(np.full(HIDDEN, a), np.full(HIDDEN, -a)),
        "block0_conv.bias": np.zeros(HIDDEN),
    }
    for i, d in enumerate(DILATIONS[1:], start=1):
        r_d = np.maximum(rates**d, 1e-3)  # floor: no all-zero weight rows (they get ORT's fallback scale 1.0)
        g = r_d / (1.0 + r_d)  # (1 + r^d z^-d) / (1 + r^d), written as a residual
        w[f"block{i}_conv.weight"], w[f"block{i}_conv.bias"] = _diagonal_taps(g, -g), np.zeros(HIDDEN)
    return w


def _width(x: np.ndarray) -> float:
    """Width of the range MinMax calibration gives ``x`` (the range always includes 0)."""
    return float(max(x.max(), 0.0) - min(x.min(), 0.0))


def _block0_ratios(u: np.ndarray, a: float, c: float) -> tuple[float, float]:
    """Scale ratios (projection / output, conv / output) block0_add gets from MinMax calibration.

    ``u`` is the projection without bias on the calibration windows, ``[n, H, T]``.
    """
    x0 = u + c
    prev = np.concatenate([np.zeros_like(x0[..., :1]), x0[..., :-1]], axis=-1)
    causal = a * (prev - x0)
    conv = np.concatenate([causal, a * x0[..., -1:], np.zeros_like(x0[..., :1])], axis=-1)  # all T + 2 outputs
    out = max(float(np.maximum(x0 + causal, 0.0).max()), 1e-12)
    return _width(x0) / out, _width(conv) / out


def _bisect(f: Callable[[float], float], lo: float, hi: float, steps: int = 60) -> float:
    """Root of a decreasing ``f`` in ``[lo, hi]``."""
    if not f(lo) > 0.0 > f(hi):
        raise QprobeError(f"block-0 tuning found no root in [{lo}, {hi}]; try another seed")
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0.0 else (lo, mid)
    return 0.5 * (lo + hi)


def _solve_bias(u: np.ndarray, a: float) -> float:
    return _bisect(lambda c: _block0_ratios(u, a, c)[0] - TARGET_RATIO, -PEAK / 2, PEAK / 2)


def tune_block0(proj: np.ndarray, calibration: np.ndarray) -> tuple[float, float]:
    """Tap ``a`` and bias ``c`` giving block0_add the ratios TARGET_RATIO and ~TARGET_OTHER_RATIO."""
    u = np.einsum("hc,nct->nht", proj, calibration[:, :, 0, :].astype(np.float64))
    a = 0.5
    for _ in range(7):
        a *= TARGET_OTHER_RATIO / _block0_ratios(u, a, _solve_bias(u, a))[1]
    return a, _solve_bias(u, a)


# --------------------------------------------------------------------------- head


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """argmin |x W + b - y|^2 + lam |W|^2 (intercept not penalised): (W, b)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, my - mx @ w


def _hinge_units(state: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Directions ``[G, S]`` and knots ``[G]``: unit k is relu(state . D_k - knot_k).

    Each state axis twice (both signs, knot at the 0.5 % quantile: nearly linear), the rest
    random directions with knots at random quantiles.
    """
    s = state.shape[1]
    directions = np.vstack([np.eye(s), -np.eye(s), rng.normal(size=(HEAD_UNITS - 2 * s, s))]) / state.std(axis=0)
    z = state @ directions.T
    levels = np.concatenate([np.full(2 * s, 0.005), rng.uniform(0.02, 0.98, HEAD_UNITS - 2 * s)])
    return directions, np.array([np.quantile(z[:, k], levels[k]) for k in range(HEAD_UNITS)])


def fit_head(features: np.ndarray, past: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> Weights:
    """State (ln c and its slopes over LAGS) -> hinge units (head_gemm1 + Relu) -> ridge (head_gemm2)."""
    to_slopes = np.eye(len(LAGS))
    to_slopes[0, 1:], to_slopes[1:, 1:] = 1.0, -np.eye(len(LAGS) - 1)  # ln c[t], ln c[t] - ln c[t - lag]
    a, a0 = _ridge(features, past, 1e-2)
    lin, off = a @ to_slopes, a0 @ to_slopes
    directions, knots = _hinge_units(features @ lin + off, rng)
    w1, b1 = directions @ lin.T, directions @ off - knots
    gain = PEAK / np.maximum(np.maximum(features @ w1.T + b1, 0.0).max(axis=0), 1e-6)
    w1, b1 = w1 * gain[:, None], b1 * gain
    w2, b2 = _ridge(np.maximum(features @ w1.T + b1, 0.0), target[:, None].astype(np.float64), 10.0)
    return {"head_gemm1.weight": w1, "head_gemm1.bias": b1, "head_gemm2.weight": w2.T, "head_gemm2.bias": b2}


# --------------------------------------------------------------------------- build


def fit_tcn_weights(data: ExampleData, seed: int) -> tuple[Weights, dict[str, float]]:
    """All float weights for ``data`` (block 0 tuned on the calibration windows), and ``a``, ``c``."""
    proj, rates = _projection(data.train.windows)
    a, c = tune_block0(proj, data.calibration.windows)
    trunk = _trunk_weights(proj, rates, a, c)
    features = run_model(build_tcn_graph(trunk, head=False).SerializeToString(), data.train.windows)
    past = history(data.series, data.train.end, LAGS)
    head = fit_head(features.astype(np.float64), past, data.train.target, np.random.default_rng([seed, 7919]))
    return {**trunk, **head}, {"tap_a": a, "projection_bias_c": c}


def environment() -> dict[str, str]:
    """What byte-identity of a rebuild depends on: library versions and the CPU."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    return {"numpy": np.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
            "machine": platform.machine(), "cpu": cpu}


def _evaluate(seed: int, out_dir: Path, data: ExampleData, float_model: bytes, int8_model: bytes,
              n_inputs: int) -> TcnExample:
    valid = data.validation
    pred_float, pred_int8 = run_model(float_model, valid.windows), run_model(int8_model, valid.windows)
    block0 = block0_add_ratios(onnx.load_from_string(int8_model))
    if not RATIO_BAND[0] <= block0.ratios[0] <= RATIO_BAND[1]:
        raise QprobeError(f"block0_add ratio {block0.ratios[0]:.4f} is outside {RATIO_BAND}; try another seed")
    return TcnExample(
        out_dir=out_dir, seed=seed, paths={k: out_dir / v for k, v in FILES.items()}, n_inputs=n_inputs,
        n_validation=len(valid.end), float_metrics=regression_metrics(pred_float, valid.target),
        int8_metrics=regression_metrics(pred_int8, valid.target),
        persistence_metrics=regression_metrics(valid.persistence, valid.target), block0=block0,
    )


def _metadata(example: TcnExample, data: ExampleData, extra: Mapping[str, Any], models: Mapping[str, bytes]) -> bytes:
    meta = {
        **example.to_dict(), **extra, "format": "qprobe.examples.tcn/1", "files": FILES,
        "environment": environment(), "quantization": QUANTIZATION,
        "sha256": {FILES[k]: hashlib.sha256(v).hexdigest() for k, v in models.items()},
        "input": {"name": "window", "shape": ["N", CHANNELS, 1, WINDOW], "layout": "NCHW, time on the last axis",
                  "channels": list(data.series.channel_names), "step_seconds": 10,
                  "standardization": {"mean": data.mean.tolist(), "std": data.std.tolist()}},
        "output": {"name": "log_conc", "shape": ["N", 1], "unit": "ln(ppm)", "horizon_steps": HORIZON},
        "windows": {"train": len(data.train.end), "calibration": len(data.calibration.end),
                    "validation": len(data.validation.end)},
    }
    return (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_all(out_dir: Path, files: Mapping[str, bytes | Mapping[str, np.ndarray]]) -> None:
    """Write every file atomically; if one fails, remove the ones this call wrote."""
    written: list[Path] = []
    try:
        for key, payload in files.items():
            path = out_dir / FILES[key]
            if isinstance(payload, bytes):
                atomic_write_bytes(path, payload)
            else:
                atomic_save_npz(path, payload)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def build_tcn_example(out_dir: Path, *, seed: int = 0, n_inputs: int = 256) -> TcnExample:
    """Build, quantize, evaluate and write the example into ``out_dir`` (the FILES)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise QprobeError(f"{out_dir} is not a directory; create it first")
    data = example_data(seed, window=WINDOW, horizon=HORIZON, n_calibration=N_CALIBRATION)
    if not 1 <= n_inputs <= len(data.validation.end):
        raise QprobeError(f"n_inputs must be in [1, {len(data.validation.end)}], got {n_inputs}")
    weights, design = fit_tcn_weights(data, seed)
    float_model = build_tcn_graph(weights).SerializeToString()
    int8_model = quantize(float_model, data.calibration.windows)
    example = _evaluate(seed, out_dir, data, float_model, int8_model, n_inputs)
    pick = np.linspace(0, len(data.validation.end) - 1, n_inputs).round().astype(np.int64)
    windows, truth = data.validation.windows[pick], data.validation.target[pick]
    golden = windows[int(np.argmax(truth))][None]  # a plume peak: the interesting case
    extra: dict[str, Any] = {
        "block0_design": {**design, "target_ratio": TARGET_RATIO, "target_other_ratio": TARGET_OTHER_RATIO,
                          "method": "weights (projection bias c by bisection, block-0 tap a), no TensorQuantOverrides"},
        "int8_fused_vs_reference_max_abs_on_inputs": float(np.abs(
            run_model(int8_model, windows, fused=True) - run_model(int8_model, windows)).max()),
    }
    models = {"int8_model": int8_model, "float_model": float_model}
    arrays = {"inputs": {"window": windows}, "calibration": {"window": data.calibration.windows},
              "truth": {"log_conc": truth[:, None]}, "golden": {"window": golden, "log_conc": run_model(int8_model, golden)}}
    extra["arrays"] = {FILES[f]: {k: list(v.shape) for k, v in npz.items()} for f, npz in arrays.items()}
    _write_all(out_dir, {**models, **arrays, "metadata": _metadata(example, data, extra, models)})
    return example


def packaged_example_dir() -> Path:
    """The pre-built copy shipped with qprobe (default seed, PACKAGED_INPUTS validation windows)."""
    return Path(__file__).resolve().parent / "data"
