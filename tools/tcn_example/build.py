"""Build the bundled example (``qprobe.examples.tcn`` ships its files): an int8 QDQ TCN forecasting
ln(gas concentration), like the motivating case.

Owns the example's weights (trained, then block 0 tuned), the build that quantizes and
evaluates it, and the files it ships. Deterministic and offline: the training loop is in
``tcn_example.train`` (numpy); the network, onnxruntime (calibration, reference
outputs) and the quantization recipe are in ``tcn_example.graph`` (its public
names are re-exported here); the data come from ``tcn_example.gas_signal``.

**Weights**, trained like a user's would be: a dense random initialisation, then Adam on
the MSE of ln(ppm) over the training windows (TRAIN; every conv mixes all 32 channels,
every block's Relu clips), plus a penalty that keeps block 0's ranges near the target
ratios (``TrainConfig.block0_penalty``) so that the tuning afterwards is small and does
not make block 0's Relu clip most of its outputs. Then block 0 is tuned (below), blocks 1-5 and the head are
fine-tuned with input_proj and block 0 frozen (FINE_TUNE), and ``head_gemm2`` is refit
in closed form (ridge on the head's hidden units).

**The block-0 ratio, and how it is reached.** ORT's QDQ quantizer removes a Relu that
follows an Add, so ``block0_add``'s output is quantized over the post-Relu range [0, M],
while its first operand, the projection, spans both signs: the scale ratio is its width
over M. We reach 2.05 (band [2.0, 2.1]; the forum case: 0.099/0.049 = 2.02) and ~1.06 for
the other operand (the conv output, whose parameters the Slice shares) **through the
weights, not** ``TensorQuantOverrides``, after training, on the calibration windows
(:func:`tune_block0`, :func:`_block0_variant`):

* input_proj's bias moves by ``delta`` (block 0's conv bias takes it back) so that the
  projection's zero point is PROJECTION_ZERO_POINT;
* block 0's conv is scaled by ``gain`` and its bias moved by ``beta``: for each gain,
  ``beta`` is bisected so that the projection ratio is TARGET_RATIO (M moves with beta,
  the projection's width does not); ``gain`` is bisected so that the conv ratio is
  TARGET_OTHER_RATIO;
* the trunk is rescaled (a symmetry: no prediction changes) so that the projection's
  width is 255 * PROJECTION_SCALE, the scale earlier releases had (reports and repro
  bundles stay comparable), and its last float32 ulps are pinned on onnxruntime's values.

Blocks 1-5 and the head then learn around the tuned block 0. So the int8 model comes out
of a plain, default ``quantize_static`` call, as a user's would; overrides would force the
scales and hide where the ratio comes from.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from threadpoolctl import threadpool_limits

from qprobe.errors import QprobeError
from qprobe.examples.tcn import FILES, PACKAGED_INPUTS, AddScales, TcnExample, packaged_example_dir
from qprobe.fileio import atomic_save_npz, atomic_write_bytes

from tcn_example.gas_signal import ExampleData, example_data, regression_metrics
from tcn_example.graph import (
    CHANNELS,
    DILATIONS,
    HIDDEN,
    N_CALIBRATION,
    OPSET,
    QUANTIZATION,
    WINDOW,
    block0_add_ratios,
    build_tcn_graph,
    quantize,
    run_model,
    run_tensors,
)
from tcn_example.train import (
    HEAD_UNITS,
    TrainConfig,
    Weights,
    as_sequences,
    block_conv,
    init_weights,
    projection,
    rescale_channels,
    train,
)

__all__ = [
    "CHANNELS", "DILATIONS", "FILES", "FINE_TUNE", "HEAD_UNITS", "HIDDEN", "HORIZON", "N_CALIBRATION", "OPSET",
    "PACKAGED_INPUTS", "PROJECTION_SCALE", "PROJECTION_ZERO_POINT", "QUANTIZATION", "RATIO_BAND",
    "TARGET_OTHER_RATIO", "TARGET_RATIO", "TRAIN", "WINDOW", "AddScales", "TcnExample", "Weights",
    "block0_add_ratios", "build_tcn_example", "build_tcn_graph", "environment", "fit_tcn_weights",
    "packaged_example_dir", "quantize", "rescale_channels", "run_model", "trunk_report", "tune_block0",
]

HORIZON = 4
TARGET_RATIO, TARGET_OTHER_RATIO, RATIO_BAND = 2.05, 1.06, (2.0, 2.1)
TRAIN = TrainConfig(epochs=8, block0_penalty=1.0, block0_ratios=(TARGET_RATIO, TARGET_OTHER_RATIO))
FINE_TUNE = TrainConfig(epochs=8, lr=1e-3, lr_end=1e-4)
FROZEN = ("input_proj.weight", "input_proj.bias", "block0_conv.weight", "block0_conv.bias")
PROJECTION_SCALE, PROJECTION_ZERO_POINT = 0.031372562, 2  # input_proj_out's int8 parameters


# --------------------------------------------------------------------------- block 0


def _block0_base(w: Weights, x0: np.ndarray, delta: float) -> np.ndarray:
    """Block 0's trained conv on all T + 2 output steps, as if its input were shifted by ``delta``.

    The bias is compensated so that the shift cancels wherever all three taps see the
    window (see :func:`_block0_variant`): ``K0 * (x0 + delta) + k0 - delta * sum(K0)``.
    """
    ext = np.concatenate([x0 + delta, np.zeros_like(x0[:, :2])], axis=1)
    row = w["block0_conv.weight"].sum(axis=(1, 2, 3))
    return block_conv(w, 0, ext) - delta * row


def _block0_ratios(x0: np.ndarray, base: np.ndarray, gain: float, beta: float, delta: float) -> tuple[float, float]:
    """Scale ratios (projection / output, conv / output) MinMax calibration gives block0_add.

    ``x0`` is the trained projection ``[n, T, H]`` on the calibration windows; the variant's
    projection is ``x0 + delta``, its conv ``gain * base + beta - delta`` (every output step,
    the Slice shares the conv's parameters) and the Add ``x0 + gain * base + beta``.
    """
    out = max(float((x0 + gain * base[:, :WINDOW] + beta).max()), 1e-12)  # the Relu's range [0, max]
    return _width(x0 + delta) / out, _width(gain * base + (beta - delta)) / out


def _width(x: np.ndarray) -> float:
    """Width of the range MinMax calibration gives ``x`` (the range always includes 0)."""
    return float(max(x.max(), 0.0) - min(x.min(), 0.0))


def _bisect(f: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
    """Root of a decreasing ``f`` in ``[lo, hi]``."""
    if not f(lo) > 0.0 > f(hi):
        raise QprobeError(f"block-0 tuning found no root in [{lo}, {hi}]; try another seed")
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0.0 else (lo, mid)
    return 0.5 * (lo + hi)


def _channel_scales(x0: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per-channel scales bringing block 0's ratios near the targets without changing the function.

    The ranges of the projection, the Add and the conv are maxima over channels, so
    widening a channel whose projection is wide but whose Add and conv outputs are narrow
    (or narrowing one that sets the Add's or the conv's range) moves the ratios. Greedy:
    up to 8 times, the one channel factor in [1/2, 2] that helps most; ``gain`` and
    ``beta`` then have little left to do (they change the function; this does not).
    """
    stats = np.stack([x0.max(axis=(0, 1)), -x0.min(axis=(0, 1)), (x0 + base[:, :WINDOW]).max(axis=(0, 1)),
                      base.max(axis=(0, 1)), -base.min(axis=(0, 1))]).clip(min=0.0)  # [5, H]

    def cost(s: np.ndarray) -> float:
        a, b, m, p, q = (stats * s).max(axis=1)
        miss = np.log((a + b) / m / TARGET_RATIO) ** 2 + np.log((p + q) / m / TARGET_OTHER_RATIO) ** 2
        return float(miss + 0.01 * np.sum(np.log(s) ** 2))

    best = np.ones(HIDDEN)
    for _ in range(8):
        trials = [best * np.where(np.arange(HIDDEN) == j, f, 1.0) for j in range(HIDDEN)
                  for f in 2.0 ** np.linspace(-1.0, 1.0, 17)]
        step = min(trials, key=cost)
        if cost(step) > cost(best) - 1e-4:
            break
        best = step
    return best


def tune_block0(w: Weights, calibration: np.ndarray) -> tuple[Weights, dict[str, float]]:
    """Block 0 tuned for its ratios (see the module doc): the weights, and what was done."""
    x0 = projection(w, as_sequences(calibration))
    s = _channel_scales(x0, _block0_base(w, x0, 0.0))
    w = rescale_channels(w, s)
    x0 = x0 * s
    width = _width(x0)
    delta = -(128 + PROJECTION_ZERO_POINT) * width / 255.0 - float(x0.min())
    base = _block0_base(w, x0, delta)

    def beta_for(gain: float) -> float:
        reach = width + float(np.abs(x0).max()) + gain * float(np.abs(base).max())  # the Add's max is <= 0 .. >= width
        return _bisect(lambda b: _block0_ratios(x0, base, gain, b, delta)[0] - TARGET_RATIO, -reach, reach, 56)

    def other(gain: float) -> float:
        return TARGET_OTHER_RATIO - _block0_ratios(x0, base, gain, beta_for(gain), delta)[1]

    gain = _bisect(other, 1e-3, 4.0, 32)
    t = {"delta": delta, "gain": gain, "beta": beta_for(gain), "scale": 255.0 * PROJECTION_SCALE / width}
    w = rescale_channels(_block0_variant(w, t), np.full(HIDDEN, t["scale"]))
    return w, {**t, "channel_scales": [float(v) for v in s]}  # type: ignore[dict-item]


def _block0_variant(w: Weights, t: Mapping[str, float]) -> Weights:
    """``w`` with input_proj's bias moved by ``delta`` (block 0's conv bias takes it back, exactly
    away from the window's first two steps), block 0's conv multiplied by ``gain`` and its
    bias moved by ``beta``."""
    delta, gain = t["delta"], t["gain"]
    row = w["block0_conv.weight"].sum(axis=(1, 2, 3))
    return {**w, "input_proj.bias": w["input_proj.bias"] + delta, "block0_conv.weight": gain * w["block0_conv.weight"],
            "block0_conv.bias": gain * (w["block0_conv.bias"] - row * delta) - delta + t["beta"]}


def _pin_projection_scale(w: Weights, calibration: np.ndarray) -> Weights:
    """Nudge input_proj so that onnxruntime's float32 range gives exactly PROJECTION_SCALE.

    The tuned width is right to ~1e-7; the scale is float32, so the last ulps are set on
    the values onnxruntime computes: the bias of the channel holding the maximum moves
    by the missing width (or the whole projection scales when one channel holds both ends).
    """
    w = dict(w)
    target = np.float32(PROJECTION_SCALE)
    for _ in range(24):
        x0 = run_tensors(build_tcn_graph(w, head=False), calibration, ["input_proj_out"])["input_proj_out"]
        lo, hi = np.float64(min(x0.min(), 0.0)), np.float64(max(x0.max(), 0.0))
        if np.float32((hi - lo) / 255.0) == target:
            return w
        missing = 255.0 * float(target) - float(hi - lo)
        top, bottom = (int(np.unravel_index(f(x0), x0.shape)[1]) for f in (np.argmax, np.argmin))  # channels
        if top != bottom:
            w["input_proj.bias"] = w["input_proj.bias"] + missing * (np.arange(HIDDEN) == top)
        else:
            factor = 1.0 + missing / float(hi - lo)
            w["input_proj.weight"] = w["input_proj.weight"] * factor
            w["input_proj.bias"] = w["input_proj.bias"] * factor
    raise QprobeError(f"could not pin input_proj's scale to {PROJECTION_SCALE}; try another seed")


# --------------------------------------------------------------------------- training


def fit_tcn_weights(data: ExampleData, seed: int) -> tuple[Weights, dict[str, float]]:
    """Train, tune block 0, fine-tune blocks 1-5 and the head: the weights and what tuning did."""
    rng = np.random.default_rng([seed, 7919])
    x, y = as_sequences(data.train.windows), data.train.target.astype(np.float64)
    w = train(init_weights(rng, float(y.mean())), x, y, TRAIN, rng)
    w, design = tune_block0(w, data.calibration.windows)
    w = _pin_projection_scale(w, data.calibration.windows)
    h0 = projection(w, x)
    h1 = np.maximum(h0 + block_conv(w, 0, h0), 0.0)[:, 1::2]  # block 1's input; blocks 0 and before stay as tuned
    return train(w, h1, y, FINE_TUNE, rng, first=1, frozen=FROZEN), design


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


def trunk_report(float_model: bytes, int8_model: bytes, calibration: np.ndarray) -> list[dict[str, Any]]:
    """Per block: int8 scales of its input, conv and output, and the share of Add outputs its Relu clips."""
    adds = [f"block{i}_add_out" for i in range(len(DILATIONS))]
    values = run_tensors(onnx.load_from_string(float_model), calibration, adds)
    int8 = onnx.load_from_string(int8_model)
    rows = []
    for i, name in enumerate(adds):
        s = block0_add_ratios(int8, f"block{i}_add")
        rows.append({"block": i, "input_scale": s.operand_scales[0], "conv_scale": s.operand_scales[1],
                     "output_scale": s.output_scale, "relu_clip_share": float(np.mean(values[name] < 0.0))})
    return rows


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
    # one BLAS thread: as fast alone on 2 cores (35 s vs 37 s) and not 2.5x slower when another
    # process trains at the same time (the test suite's two workers); same bytes either way
    with threadpool_limits(limits=1, user_api="blas"):
        weights, design = fit_tcn_weights(data, seed)
    float_model = build_tcn_graph(weights).SerializeToString()
    int8_model = quantize(float_model, data.calibration.windows)
    example = _evaluate(seed, out_dir, data, float_model, int8_model, n_inputs)
    pick = np.linspace(0, len(data.validation.end) - 1, n_inputs).round().astype(np.int64)
    windows, truth = data.validation.windows[pick], data.validation.target[pick]
    golden = windows[int(np.argmax(truth))][None]  # a plume peak: the interesting case
    extra: dict[str, Any] = {
        "block0_design": {**design, "target_ratio": TARGET_RATIO, "target_other_ratio": TARGET_OTHER_RATIO,
                          "method": "weights (after training: projection bias shift delta, block-0 conv gain and bias "
                          "offset beta by bisection, trunk rescaled), no TensorQuantOverrides"},
        "blocks": trunk_report(float_model, int8_model, data.calibration.windows),
        "int8_fused_vs_reference_max_abs_on_inputs": float(np.abs(
            run_model(int8_model, windows, fused=True) - run_model(int8_model, windows)).max()),
    }
    models = {"int8_model": int8_model, "float_model": float_model}
    arrays = {"inputs": {"window": windows}, "calibration": {"window": data.calibration.windows},
              "truth": {"log_conc": truth[:, None]},
              "golden": {"window": golden, "log_conc": run_model(int8_model, golden)}}
    extra["arrays"] = {FILES[f]: {k: list(v.shape) for k, v in npz.items()} for f, npz in arrays.items()}
    _write_all(out_dir, {**models, **arrays, "metadata": _metadata(example, data, extra, models)})
    return example
