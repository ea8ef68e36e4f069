"""The code-pair fast path of a comparison against plain numpy formulas on random codes."""

from __future__ import annotations

import numpy as np
import pytest

from qprobe.compare.accumulate import TensorAccumulator
from qprobe.metrics.lsb import HIST_LIMIT
from qprobe.tensors import QuantParams

EPS = float(np.finfo(np.float32).eps)


def _st_numpy(r: np.ndarray, p: np.ndarray) -> dict[str, float]:
    r, p = r.astype(np.float64).ravel(), p.astype(np.float64).ravel()
    d = r - p
    return {"rmse": float(np.sqrt(np.mean(d**2))), "mae": float(np.mean(np.abs(d))),
            "l2r": float(np.linalg.norm(d) / (np.linalg.norm(p) + EPS)), "mean": float(np.mean(d)),
            "std": float(np.std(d, ddof=1)), "nse": float(1 - np.mean(d**2) / (np.var(r, ddof=1) + EPS)),
            "cos": float(np.dot(r, p) / (np.linalg.norm(r) * np.linalg.norm(p)))}


def _deq(codes: np.ndarray, s: float, z: int) -> np.ndarray:
    return (codes.astype(np.float32) - np.float32(z)) * np.float32(s)


@pytest.mark.parametrize(("dtype", "zp"), [("int8", -3), ("uint8", 131)])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("identical_batch", [False, True])
def test_code_pairs_equal_plain_numpy(dtype: str, zp: int, seed: int, identical_batch: bool) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    ref = rng.integers(lo, hi + 1, size=(50, 7, 9)).astype(dtype)
    noise = rng.choice([-9, -1, 0, 0, 0, 1, 2], size=ref.shape)
    if identical_batch:  # the second batch has identical codes on both sides (its own counting path)
        noise[16:32] = 0
    tgt = np.clip(ref.astype(int) + noise, lo, hi).astype(dtype)
    q = QuantParams.from_arrays(0.0371, zp, dtype)
    acc = TensorAccumulator("t", q)
    for i in range(0, 50, 16):  # batches
        acc.add(ref[i : i + 16], tgt[i : i + 16])
    assert acc.pairs is not None  # the fast path was taken
    st, lsb = acc.result()
    want = _st_numpy(_deq(ref, 0.0371, zp), _deq(tgt, 0.0371, zp))
    for k, v in want.items():
        assert getattr(st, k) == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert st.n == ref.size
    d = ref.astype(np.int64) - tgt.astype(np.int64)
    a = np.abs(d)
    assert lsb is not None and lsb.n == ref.size
    assert lsb.exact_share == np.mean(a == 0) and lsb.one_lsb_share == np.mean(a == 1)
    assert lsb.big_share == np.mean(a >= 2) and lsb.max_abs_lsb == a.max()
    assert lsb.mean_delta_lsb == pytest.approx(d.mean(), rel=1e-12)
    assert lsb.target_saturated_share == np.mean(((tgt == lo) | (tgt == hi)) & (d != 0))
    hist = np.bincount(np.clip(d, -HIST_LIMIT, HIST_LIMIT).ravel() + HIST_LIMIT, minlength=2 * HIST_LIMIT + 1)
    assert lsb.histogram == tuple(int(v) for v in hist)


def test_code_pairs_merge_with_the_elementwise_path() -> None:
    rng = np.random.default_rng(5)
    q = QuantParams.from_arrays(0.5, 0, "int8")
    ref = rng.integers(-128, 128, size=(40, 6)).astype(np.int8)
    tgt = np.clip(ref.astype(int) + rng.integers(-2, 3, size=ref.shape), -128, 127).astype(np.int8)
    a = TensorAccumulator("t", q)
    a.add(ref[:20], tgt[:20])
    b = TensorAccumulator("t", q)
    b.add(ref[20:], _deq(tgt[20:], 0.5, 0))  # a float target: the element-wise path
    assert a.pairs is not None and b.pairs is None
    st, lsb = a.merge(b).result()
    want = _st_numpy(_deq(ref, 0.5, 0), _deq(tgt, 0.5, 0))
    for k, v in want.items():
        assert getattr(st, k) == pytest.approx(v, rel=1e-9, abs=1e-12), k
    d = ref.astype(np.int64) - tgt.astype(np.int64)
    assert lsb is not None and lsb.n == ref.size and lsb.max_abs_lsb == np.abs(d).max()
    assert lsb.exact_share == np.mean(d == 0)


def test_identical_codes_are_exact() -> None:
    q = QuantParams.from_arrays(0.1, 4, "int8")
    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)
    acc = TensorAccumulator("t", q)
    acc.add(x, x.copy())
    st, lsb = acc.result()
    assert st.rmse == 0.0 and st.cos == pytest.approx(1.0) and lsb is not None and lsb.exact_share == 1.0


def test_code_pair_metrics_do_not_depend_on_blas_threads() -> None:
    """A cluster's client never opens a backend, so numpy's BLAS keeps its default threads there;
    weighted sums over many distinct code pairs must not go through a BLAS dot (a 2-thread dot
    rounds differently from a 1-thread one, and sharded compare would no longer equal serial)."""
    from threadpoolctl import threadpool_limits

    from qprobe.metrics.st import StAccumulator

    rng = np.random.default_rng(0)
    r, p = rng.standard_normal(60_000), rng.standard_normal(60_000)
    w = rng.integers(1, 1000, 60_000)
    results = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            acc = StAccumulator()
            acc.add_weighted(r, p, w)
            results.append(acc.result())
    assert results[0] == results[1]


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("size", [1, 255, 256, 257, 70_001])
def test_code_sums_are_exact(dtype: str, size: int) -> None:
    """The float32-row sums against int64 numpy, at the codes whose squares are largest (the
    rows' sums of squares closest to 2^24) and on random codes, with a tail past the last row."""
    from qprobe.metrics.codes import code_sums

    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    rng = np.random.default_rng(size)
    for x in (np.full(size, lo if dtype == "int8" else hi, dtype=dtype),
              rng.integers(lo, hi + 1, size=size).astype(dtype)):
        w = x.astype(np.int64)
        assert code_sums(x) == (int(w.sum()), int((w * w).sum()))


def test_many_differing_pairs_in_one_batch() -> None:
    """A batch with more differing pairs than np.add.at is used for (the bincount branch),
    against plain numpy on the same codes."""
    from qprobe.metrics.codes import DENSE

    rng = np.random.default_rng(7)
    q = QuantParams.from_arrays(0.0213, 5, "int8")
    ref = rng.integers(-128, 128, size=(4, 3 * DENSE)).astype(np.int8)
    tgt = np.clip(ref.astype(int) + rng.choice([-2, -1, 0, 1], size=ref.shape), -128, 127).astype(np.int8)
    acc = TensorAccumulator("t", q)
    acc.add(ref[:3], tgt[:3])
    acc.add(ref[3:], tgt[3:])
    st, lsb = acc.result()
    want = _st_numpy(_deq(ref, 0.0213, 5), _deq(tgt, 0.0213, 5))
    for k, v in want.items():
        assert getattr(st, k) == pytest.approx(v, rel=1e-9, abs=1e-12), k
    d = ref.astype(np.int64) - tgt.astype(np.int64)
    assert lsb is not None and lsb.n == ref.size and lsb.exact_share == np.mean(d == 0)
    assert lsb.one_lsb_share == np.mean(np.abs(d) == 1) and lsb.big_share == np.mean(np.abs(d) >= 2)
