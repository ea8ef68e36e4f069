"""ST metrics and LSB metrics against independent formulas on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qprobe.metrics import LsbAccumulator, StAccumulator, st_metrics
from qprobe.tensors import QuantParams

EPS = float(np.finfo(np.float32).eps)


def st_reference(ref: np.ndarray, pred: np.ndarray, ddof: int = 1) -> dict[str, float]:
    """ST's definitions (evaluation_metrics page) with the ddof real reports use, in plain numpy."""
    r, p = ref.astype(np.float64).ravel(), pred.astype(np.float64).ravel()
    d = r - p
    return {
        "rmse": float(np.sqrt(np.mean(d**2))),
        "mae": float(np.mean(np.abs(d))),
        "l2r": float(np.linalg.norm(d) / (np.linalg.norm(p) + EPS)),
        "mean": float(np.mean(d)),
        "std": float(np.std(d, ddof=ddof)),
        "nse": float(1 - np.mean(d**2) / (np.var(r, ddof=ddof) + EPS)),
        "cos": float(np.dot(r, p) / (np.linalg.norm(r) * np.linalg.norm(p))),
    }


def test_hand_computed_values() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 2.0, 3.0, 2.0])  # the last element is 2 low
    m = st_metrics(ref, pred)
    assert m.mean == pytest.approx(0.5)  # ref - pred: a target biased low gives a positive mean
    assert m.mae == pytest.approx(0.5)
    assert m.rmse == pytest.approx(1.0)  # sqrt(4/4)
    assert m.std == pytest.approx(math.sqrt(3.0 / 3))  # ddof=1: (1.5^2 + 3 x 0.5^2) / 3
    assert m.l2r == pytest.approx(2.0 / (math.sqrt(1 + 4 + 9 + 4) + EPS))  # denominator: the prediction
    assert m.nse == pytest.approx(1 - 1.0 / (5.0 / 3 + EPS))  # var(ref, ddof=1) = 5/3
    snippet = st_metrics(ref, pred, ddof=0)  # the documentation snippet's numpy default
    assert snippet.std == pytest.approx(math.sqrt(0.75))
    assert snippet.nse == pytest.approx(1 - 1.0 / (1.25 + EPS))
    assert m.cos == pytest.approx(22.0 / (math.sqrt(30) * math.sqrt(18)))


def test_l2r_uses_prediction_norm_not_reference_norm() -> None:
    ref = np.array([10.0, 0.0])
    pred = np.array([1.0, 0.0])
    assert st_metrics(ref, pred).l2r == pytest.approx(9.0 / (1.0 + EPS))


@pytest.mark.parametrize("seed", range(5))
def test_streaming_batches_equal_one_shot_formulas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(3.0, 2.0, size=(37, 5, 4))
    pred = ref + rng.normal(0.2, 0.5, size=ref.shape)
    for ddof in (0, 1):
        acc = StAccumulator(ddof=ddof)
        for lo in range(0, 37, 8):  # uneven batches
            acc.add(ref[lo : lo + 8], pred[lo : lo + 8])
        got = acc.result()
        want = st_reference(ref, pred, ddof)
        for k, v in want.items():
            assert getattr(got, k) == pytest.approx(v, rel=1e-12, abs=1e-15), k
        assert got.n == ref.size


def test_accuracy_argmax_axis_1() -> None:
    ref = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    pred = np.array([[0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])
    assert st_metrics(ref, pred, classifier=True).acc == pytest.approx(1 / 3)
    assert st_metrics(ref, pred).acc is None


def test_all_zero_tensors_are_identical_not_nan() -> None:
    z = np.zeros(10)
    m = st_metrics(z, z)
    assert m.cos == 1.0 and m.rmse == 0.0


def test_lsb_metrics_on_codes() -> None:
    q = QuantParams.from_arrays(0.05, -3, "int8")
    ref = np.array([0, 10, 20, 127, -128, 5], dtype=np.int8)
    tgt = np.array([0, 9, 23, 127, -128, -128], dtype=np.int8)
    acc = LsbAccumulator(q)
    acc.add(ref[:3], tgt[:3])
    acc.add(ref[3:], tgt[3:])
    m = acc.result()
    deltas = ref.astype(int) - tgt.astype(int)  # 0, 1, -3, 0, 0, 133
    assert m.n == 6
    assert m.exact_share == pytest.approx(3 / 6)
    assert m.one_lsb_share == pytest.approx(1 / 6)
    assert m.big_share == pytest.approx(2 / 6)
    assert m.max_abs_lsb == 133
    assert m.mean_delta_lsb == pytest.approx(deltas.mean())
    assert m.target_saturated_share == pytest.approx(1 / 6)  # -128 where the reference is 5
    assert sum(m.histogram) == 6


def test_lsb_metrics_on_real_values_per_channel() -> None:
    q = QuantParams.from_arrays([0.5, 0.25], [0, 0], "int8", axis=1)
    ref = np.array([[1.0, 1.0], [2.0, 2.0]])
    tgt = np.array([[0.5, 1.0], [2.0, 1.5]])
    m = LsbAccumulator(q)
    m.add(ref, tgt)
    r = m.result()
    # deltas in LSB: (0.5/0.5=1, 0), (0, 0.5/0.25=2)
    assert r.max_abs_lsb == pytest.approx(2.0)
    assert r.mean_delta_lsb == pytest.approx(0.75)
