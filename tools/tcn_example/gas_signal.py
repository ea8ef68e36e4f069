"""Synthetic, seeded multichannel gas-sensor time series for the TCN example.

Owns the data side of the bundled example: a latent gas concentration, the sensor array
that observes it, the standardization of the channels, the sliding windows the model
reads and the regression metrics the example reports. Only numpy; deterministic for a
seed (every random draw comes from one ``numpy.random.Generator`` per component, spawned
from the seed, so adding a component never reshuffles another).

The physics is deliberately simple but plausible:

* **Concentration** (ppm): a slowly wandering background (AR(1) in the log domain) plus
  plumes arriving as a Poisson process, each with a log-normal peak, a fast rise and a
  slower exponential decay. Plumes add in the linear domain; the target is ``ln(ppm)``.
* **Environment**: temperature (degC) and relative humidity (%) with a daily cycle and
  slow weather noise; both are also input channels.
* **Metal-oxide sensors**: each one's log conductance follows ``beta * ln(ppm)`` plus a
  temperature and humidity cross-sensitivity and a slow drift (linear ageing plus a
  random walk), seen through a first-order lag with its own time constant, plus white
  read-out noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qprobe.errors import InputError
from qprobe.examples.tcn import RegressionMetrics

FloatArray = np.ndarray


@dataclass(frozen=True)
class GasSignalConfig:
    """Sizes and physical constants of the simulation (one step is 10 s)."""

    n_steps: int = 24_000
    n_sensors: int = 6
    steps_per_day: int = 8_640
    background_ppm: float = 3.0
    background_tau: float = 2_000.0
    plume_rate: float = 1.0 / 70.0
    plume_peak_ln_ppm: float = 3.2
    plume_peak_sigma: float = 0.8
    noise: float = 0.01


@dataclass(frozen=True)
class GasSeries:
    """One simulated recording: ``channels[c, t]`` in physical units and ``ln(ppm)``."""

    log_conc: FloatArray
    channels: FloatArray
    channel_names: tuple[str, ...]


@dataclass(frozen=True)
class WindowSet:
    """Sliding windows ``[n, C, 1, T]`` (float32) with their forecast targets.

    ``target[i]`` is ``ln(ppm)`` ``horizon`` steps after the window's last step
    ``end[i]``; ``persistence[i]`` is ``ln(ppm)`` at ``end[i]`` (the naive forecast).
    """

    windows: FloatArray
    target: FloatArray
    persistence: FloatArray
    end: FloatArray


def _spawn(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _ar1(rng: np.random.Generator, n: int, tau: float, sigma: float) -> FloatArray:
    """Stationary AR(1) with correlation time ``tau`` steps and marginal std ``sigma``."""
    a = float(np.exp(-1.0 / tau))
    innovations = rng.normal(0.0, sigma * np.sqrt(1.0 - a * a), n)
    out = np.empty(n)
    level = rng.normal(0.0, sigma)
    for t in range(n):
        level = a * level + innovations[t]
        out[t] = level
    return out


def _plumes(rng: np.random.Generator, cfg: GasSignalConfig) -> FloatArray:
    """Sum of plumes (ppm): a smooth rise ``(1 - exp(-t/rise))**2`` times a decay ``exp(-t/decay)``."""
    out = np.zeros(cfg.n_steps)
    n_plumes = int(rng.poisson(cfg.plume_rate * cfg.n_steps))
    starts = np.sort(rng.integers(0, cfg.n_steps, n_plumes))
    peaks = np.exp(rng.normal(cfg.plume_peak_ln_ppm, cfg.plume_peak_sigma, n_plumes))
    rises = rng.uniform(4.0, 12.0, n_plumes)
    decays = rng.uniform(15.0, 60.0, n_plumes)
    for start, peak, rise, decay in zip(starts, peaks, rises, decays, strict=True):
        t = np.arange(min(int(8 * decay + 4 * rise), cfg.n_steps - int(start)), dtype=float)
        shape = (1.0 - np.exp(-t / rise)) ** 2 * np.exp(-t / decay)
        out[start : start + t.size] += peak * shape / shape.max()
    return out


def _environment(rng: np.random.Generator, cfg: GasSignalConfig) -> tuple[FloatArray, FloatArray]:
    phase = 2.0 * np.pi * np.arange(cfg.n_steps) / cfg.steps_per_day + rng.uniform(0, 2 * np.pi)
    temp = 22.0 + 3.0 * np.sin(phase) + _ar1(rng, cfg.n_steps, 600.0, 1.0)
    humidity = 45.0 - 8.0 * np.sin(phase) + _ar1(rng, cfg.n_steps, 900.0, 5.0)
    return temp, np.clip(humidity, 10.0, 95.0)


def _first_order_lag(x: FloatArray, tau: FloatArray) -> FloatArray:
    """Sensors ``[k, t]`` responding to ``x[k, t]`` with time constants ``tau[k]`` steps."""
    alpha = 1.0 - np.exp(-1.0 / tau)
    out = np.empty_like(x)
    state = x[:, 0].copy()
    for t in range(x.shape[1]):
        state += alpha * (x[:, t] - state)
        out[:, t] = state
    return out


def _sensors(
    rng: np.random.Generator, cfg: GasSignalConfig, log_conc: FloatArray, temp: FloatArray, hum: FloatArray
) -> FloatArray:
    k, n = cfg.n_sensors, cfg.n_steps
    beta = rng.uniform(0.4, 1.0, (k, 1))
    temp_coef = rng.normal(0.0, 0.06, (k, 1))
    hum_coef = rng.normal(0.0, 0.02, (k, 1))
    tau = np.linspace(1.0, 10.0, k) * rng.uniform(0.85, 1.15, k)
    ageing = rng.normal(0.0, 0.02, (k, 1)) * np.arange(n) / n
    wander = np.cumsum(rng.normal(0.0, 0.0002, (k, n)), axis=1)
    drive = beta * log_conc + temp_coef * (temp - 22.0) + hum_coef * (hum - 45.0) + ageing + wander
    return _first_order_lag(drive, tau) + rng.normal(0.0, cfg.noise, (k, n))


def simulate_gas_series(seed: int, config: GasSignalConfig | None = None) -> GasSeries:
    """Simulate one recording; the same seed and config give the same arrays."""
    cfg = config or GasSignalConfig()
    if cfg.n_steps < 1_000 or cfg.n_sensors < 1:
        raise InputError(f"need n_steps >= 1000 and n_sensors >= 1, got {cfg.n_steps}, {cfg.n_sensors}")
    r_bg, r_plume, r_env, r_sensor = _spawn(seed, 4)
    background = cfg.background_ppm * np.exp(_ar1(r_bg, cfg.n_steps, cfg.background_tau, 0.3))
    log_conc = np.log(background + _plumes(r_plume, cfg))
    temp, hum = _environment(r_env, cfg)
    sensors = _sensors(r_sensor, cfg, log_conc, temp, hum)
    names = tuple(f"mox{i}" for i in range(cfg.n_sensors)) + ("temperature", "humidity")
    return GasSeries(log_conc=log_conc, channels=np.vstack([sensors, temp, hum]), channel_names=names)


def channel_stats(channels: FloatArray, stop: int) -> tuple[FloatArray, FloatArray]:
    """Per-channel mean and std over ``[:stop]`` (the training part only, no leakage)."""
    part = channels[:, :stop]
    return part.mean(axis=1), part.std(axis=1) + 1e-9


def make_windows(
    series: GasSeries,
    mean: FloatArray,
    std: FloatArray,
    *,
    ends: np.ndarray,
    window: int,
    horizon: int,
) -> WindowSet:
    """Standardized windows ending at each of ``ends`` (inclusive) with their targets."""
    ends = np.asarray(ends, dtype=np.int64)
    n_steps = series.log_conc.size
    if ends.size == 0 or ends.min() < window - 1 or ends.max() + horizon >= n_steps:
        raise InputError(f"window ends must lie in [{window - 1}, {n_steps - horizon - 1}]")
    scaled = ((series.channels - mean[:, None]) / std[:, None]).astype(np.float32)
    index = ends[:, None] + np.arange(1 - window, 1)[None, :]
    windows = np.ascontiguousarray(scaled[:, index].transpose(1, 0, 2)[:, :, None, :])
    return WindowSet(
        windows=windows,
        target=series.log_conc[ends + horizon].astype(np.float32),
        persistence=series.log_conc[ends].astype(np.float32),
        end=ends,
    )


def regression_metrics(prediction: FloatArray, truth: FloatArray) -> RegressionMetrics:
    """RMSE, MAE and R² of ``prediction`` against ``truth`` (both flattened, float64)."""
    p = np.asarray(prediction, dtype=np.float64).ravel()
    y = np.asarray(truth, dtype=np.float64).ravel()
    if p.shape != y.shape or y.size < 2:
        raise InputError(f"prediction {p.shape} and truth {y.shape} must match and hold >= 2 values")
    err = p - y
    r2 = 1.0 - float(np.sum(err**2)) / float(np.sum((y - y.mean()) ** 2))
    return RegressionMetrics(
        rmse=float(np.sqrt(np.mean(err**2))), mae=float(np.mean(np.abs(err))), r2=r2
    )


@dataclass(frozen=True)
class ExampleData:
    """The recording split by time: train, calibration (inside train) and validation.

    Validation starts ``gap`` steps after the training part ends, so no window overlaps
    both, and the sensors have drifted a little further by then (as in the field).
    """

    series: GasSeries
    mean: FloatArray
    std: FloatArray
    train: WindowSet
    calibration: WindowSet
    validation: WindowSet


def example_data(
    seed: int,
    *,
    window: int = 64,
    horizon: int = 4,
    n_calibration: int = 128,
    train_stride: int = 3,
    valid_stride: int = 2,
    gap: int = 500,
    config: GasSignalConfig | None = None,
) -> ExampleData:
    """Simulate one recording and cut it into the three window sets the example uses."""
    series = simulate_gas_series(seed, config)
    n_steps = series.log_conc.size
    train_stop = 2 * n_steps // 3
    mean, std = channel_stats(series.channels, train_stop)
    train_ends = np.arange(window - 1, train_stop - horizon, train_stride)
    calib_ends = np.linspace(window - 1, train_stop - horizon - 1, n_calibration).round().astype(np.int64)
    valid_ends = np.arange(train_stop + gap, n_steps - horizon, valid_stride)

    def cut(ends: np.ndarray) -> WindowSet:
        return make_windows(series, mean, std, ends=ends, window=window, horizon=horizon)

    return ExampleData(series, mean, std, cut(train_ends), cut(calib_ends), cut(valid_ends))


def history(series: GasSeries, ends: np.ndarray, lags: tuple[int, ...]) -> FloatArray:
    """``ln(ppm)`` at ``ends - lag`` for each lag: ``[n, len(lags)]``, the state a forecaster needs."""
    return series.log_conc[np.asarray(ends)[:, None] - np.asarray(lags)[None, :]]
