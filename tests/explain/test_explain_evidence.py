"""Model-free evidence against synthetic targets with a known defect (closed-form oracles).

An Add whose target scales operand 1 by a known wrong factor, a channel that clips at a
known code, a target that floors instead of rounding, corruption at random positions,
errors only at borders: the fits and patterns must recover each.
"""

from __future__ import annotations

import numpy as np

from qprobe.explain.evidence import channel_fit, eltwise_fit, sentence
from qprobe.explain.observe import Observation
from qprobe.explain.pattern import consistency, pattern
from qprobe.explain.probes import ProbeConfig, synthetic_spec

RNG = np.random.default_rng(5)


def _add_observation(alpha: float) -> tuple[Observation, object]:
    cfg = ProbeConfig(2.05, 0, (2, 1, -3))
    gs = synthetic_spec("Add", cfg)
    (sa, sb, so), (za, zb, zo) = cfg.scales(), cfg.zero_points
    a = RNG.integers(-60, 60, size=(16, 512))
    b = RNG.integers(-128, 128, size=(16, 512))
    ra, rb = float(np.float32(sa)) / float(np.float32(so)), float(np.float32(sb)) / float(np.float32(so))
    exact = np.clip(np.rint(ra * (a - za) + rb * (b - zb)) + zo, -128, 127)
    wrong = np.clip(np.rint(alpha * (a - za) + rb * (b - zb)) + zo, -128, 127)
    obs = Observation("add", "Add", {"a": a.astype(np.int8), "b": b.astype(np.int8)}, exact.astype(np.int8),
                      wrong.astype(np.int8), np.arange(16), 16, "synthetic")
    return obs, gs


def test_the_effective_coefficient_is_recovered_and_said() -> None:
    obs, gs = _add_observation(1.3)
    fit = eltwise_fit(obs, gs)  # type: ignore[arg-type]
    eff = [r["effective"] for r in fit["operands"]]
    assert abs(eff[0] - 1.3) < 0.01 and abs(eff[1] - 0.7) < 0.01
    assert abs(fit["operands"][0]["reference_fit"] - 2.05) < 0.01
    assert "operand 1 (a) were scaled by 1.3 instead of 2.05" in sentence(fit, "Add")


def test_a_right_coefficient_is_not_blamed() -> None:
    obs, gs = _add_observation(2.05)
    assert "not a coefficient error" in sentence(eltwise_fit(obs, gs), "Add")  # type: ignore[arg-type]


def test_random_corruption_breaks_consistency_an_arithmetic_error_does_not() -> None:
    obs, gs = _add_observation(1.3)
    assert pattern(obs, gs).consistency == 1.0  # type: ignore[arg-type]
    bad = obs.observed.copy()
    hit = RNG.random(bad.shape) < 0.05
    bad[hit] ^= np.int8(0x20)
    key = (obs.inputs["a"].astype(np.int64) + 128) * 256 + obs.inputs["b"].astype(np.int64) + 128
    assert 0.9 < consistency(key, bad) < 0.99


def test_clipping_and_flooring_are_read_off_the_channels() -> None:
    real = RNG.uniform(-40, 60, size=(200, 4))
    obs = np.floor(real).astype(np.int64)  # floors: mean residual -0.5
    obs[:, 2] = np.minimum(obs[:, 2], 20)  # channel 2 stops at code 20
    o = Observation("c", "Conv", {}, np.rint(real).astype(np.int8), obs.astype(np.int8), np.arange(200), 200, "s")
    gs = synthetic_spec("Add", ProbeConfig(1.0, 0, (0, 0, 0)))  # only the clamp and zero point are read
    gs = type(gs)(type(gs.spec)(**{**vars(gs.spec), "op_type": "MatMul"}), "gemm", gs.clamp)
    fit = channel_fit(o, gs, real)
    assert [c["channel"] for c in fit["clipped"]] == [2] and fit["clipped"][0]["high"] == 20
    assert abs(fit["mean_residual"] + 0.5) < 0.1
    text = sentence(fit, "MatMul")
    assert "1 of 4 channels stop short" in text and "truncates instead of rounding" in text


def test_errors_at_borders_are_located() -> None:
    obs, gs = _add_observation(2.05)
    shaped = Observation("add", "Add", {k: v.reshape(16, 8, 64) for k, v in obs.inputs.items()},
                         obs.expected.reshape(16, 8, 64), obs.expected.reshape(16, 8, 64).copy(), np.arange(16), 16,
                         "s")
    shaped.observed[:, :, 0] ^= np.int8(0x10)
    p = pattern(shaped, gs)  # type: ignore[arg-type]
    assert p.border_share == 1.0 and p.border_fraction is not None and p.border_fraction < 0.5
