"""ST Edge AI's validation metrics, exactly as ``stedgeai validate`` defines them.

Definitions (ST Edge AI Core docs, evaluation_metrics): every metric is computed on the
flattened arrays of all samples of one tensor, in float64, with ``ref`` the reference and
``pred`` the prediction (the target):

    rmse = sqrt(mean((ref - pred)^2))      mae = mean(|ref - pred|)
    l2r  = ||ref - pred|| / (||pred|| + eps_f32)     (denominator: the *prediction*)
    mean = mean(ref - pred)                (sign: a target biased low gives mean > 0)
    std  = std(ref - pred, ddof=1)         nse = 1 - mse / (var(ref, ddof=1) + eps_f32)
    cos  = <ref, pred> / (||ref|| ||pred||)
    acc  = share of samples whose argmax over axis 1 agrees (classifier outputs only)

``ddof=1``: the documentation's snippet uses numpy's default ddof=0, but real reports of
ST Edge AI Core 2.2.0 (three published N6 target runs) are reproduced only with ddof=1 for
``std`` and for ``var(ref)`` in ``nse`` (std^2 / (rmse^2 - mean^2) = n/(n-1) to 1.5e-7);
``ddof`` is a parameter for those who want the snippet's numbers. Quantized data are
dequantized in float32 before the metrics, as ST does (``QuantParams.dequantize_f32``).

``StAccumulator`` computes them in one pass over batches (sums and Chan's pairwise
variance merge), so that no more than one batch needs to be in memory; ``st_metrics``
is the one-shot form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qprobe.serde import plain

EPS_F32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class StMetrics:
    n: int
    rmse: float
    mae: float
    l2r: float
    mean: float
    std: float
    nse: float
    cos: float
    acc: float | None = None

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))  # non-finite values (no samples) become null

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StMetrics:
        acc = d.get("acc")
        f = {k: json_float(d[k]) for k in ("rmse", "mae", "l2r", "mean", "std", "nse", "cos")}
        return cls(n=int(d["n"]), acc=None if acc is None else float(acc), **f)


def json_float(v: Any) -> float:
    """A float read back from JSON: null (and legacy "nan"/"inf" strings) are non-finite."""
    return math.nan if v is None else float(v)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) by numpy's pairwise summation, not a BLAS dot: a multithreaded BLAS splits the
    sum by its thread count, so a Dask worker (one thread) and the client would differ in the last
    bits; this does not."""
    return float(np.sum(a * b))


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations, mergeable (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: np.ndarray) -> None:
        nb = int(x.size)
        if nb == 0:
            return
        mb = float(np.mean(x))
        dev = x - mb
        self.merge(_Moments(nb, mb, _dot(dev, dev)))

    def add_weighted(self, x: np.ndarray, w: np.ndarray) -> None:
        """Values ``x`` seen ``w`` times each (the same update as ``add`` on the repeated values)."""
        nb = int(w.sum())
        if nb == 0:
            return
        wf = w.astype(np.float64)
        mb = _dot(wf, x) / nb
        dev = x - mb
        self.merge(_Moments(nb, mb, _dot(wf, dev * dev)))

    def merge(self, other: _Moments) -> None:
        """Combine two disjoint sets of samples (Chan et al.'s pairwise update).

        Adding a batch is merging its moments, and an empty side takes the other's exactly, so
        accumulating batches one by one and merging per-batch accumulators in the same order give
        bit-equal results (what sharding over a cluster relies on)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean, other.m2
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n

    def var(self, ddof: int) -> float:
        return self.m2 / (self.n - ddof) if self.n > ddof else math.nan


class StAccumulator:
    """Streaming ST metrics over batches of (reference, prediction) real values."""

    def __init__(self, classifier: bool = False, ddof: int = 1) -> None:
        self.classifier = classifier
        self.ddof = ddof
        self._d = _Moments()
        self._r = _Moments()
        self._sum_abs = 0.0
        self._sum_d2 = 0.0
        self._sum_p2 = 0.0
        self._sum_r2 = 0.0
        self._sum_rp = 0.0
        self._acc_hits = 0
        self._acc_n = 0

    def add(self, ref: np.ndarray, pred: np.ndarray) -> None:
        r = np.asarray(ref, dtype=np.float64)
        p = np.asarray(pred, dtype=np.float64)
        if r.shape != p.shape:
            p = p.reshape(r.shape)
        if self.classifier and r.ndim >= 2 and r.shape[1] > 1:
            self._acc_hits += int(np.sum(np.argmax(r, axis=1) == np.argmax(p, axis=1)))
            self._acc_n += int(np.prod(np.delete(r.shape, 1)))
        r, p = r.reshape(-1), p.reshape(-1)
        d = r - p
        self._d.add(d)
        self._r.add(r)
        self._sum_abs += float(np.sum(np.abs(d)))
        self._sum_d2 += _dot(d, d)
        self._sum_p2 += _dot(p, p)
        self._sum_r2 += _dot(r, r)
        self._sum_rp += _dot(r, p)

    def add_weighted(self, ref: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> None:
        """Value pairs ``(ref[i], pred[i])`` seen ``weights[i]`` times each (1-D; no accuracy:
        a classifier's argmax needs whole samples)."""
        r = np.asarray(ref, dtype=np.float64).reshape(-1)
        p = np.asarray(pred, dtype=np.float64).reshape(-1)
        w = np.asarray(weights).reshape(-1)
        wf = w.astype(np.float64)
        d = r - p
        self._d.add_weighted(d, w)
        self._r.add_weighted(r, w)
        self._sum_abs += _dot(wf, np.abs(d))
        self._sum_d2 += _dot(wf, d * d)
        self._sum_p2 += _dot(wf, p * p)
        self._sum_r2 += _dot(wf, r * r)
        self._sum_rp += _dot(wf, r * p)

    def add_identical(self, n: int, mean: float, m2: float, sum_sq: float) -> None:
        """``n`` pairs whose prediction equals the reference, given the references' mean, sum of
        squared deviations and sum of squares (no accuracy)."""
        if n <= 0:
            return
        self._d.merge(_Moments(n, 0.0, 0.0))
        self._r.merge(_Moments(n, mean, m2))
        self._sum_p2 += sum_sq
        self._sum_r2 += sum_sq
        self._sum_rp += sum_sq

    def merge(self, other: StAccumulator) -> StAccumulator:
        """Add the samples ``other`` accumulated (disjoint from ours); returns self."""
        self._d.merge(other._d)
        self._r.merge(other._r)
        for name in ("_sum_abs", "_sum_d2", "_sum_p2", "_sum_r2", "_sum_rp", "_acc_hits", "_acc_n"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def result(self) -> StMetrics:
        n = self._d.n
        if n == 0:
            nan = math.nan
            return StMetrics(0, nan, nan, nan, nan, nan, nan, nan, None)
        mse = self._sum_d2 / n
        norm_r, norm_p = math.sqrt(self._sum_r2), math.sqrt(self._sum_p2)
        if norm_r == 0.0 and norm_p == 0.0:
            cos = 1.0  # both all-zero: identical
        elif norm_r == 0.0 or norm_p == 0.0:
            cos = 0.0
        else:
            cos = self._sum_rp / (norm_r * norm_p)
        acc = self._acc_hits / self._acc_n if self.classifier and self._acc_n else None
        return StMetrics(
            n=n,
            rmse=math.sqrt(mse),
            mae=self._sum_abs / n,
            l2r=math.sqrt(self._sum_d2) / (norm_p + EPS_F32),
            mean=self._d.mean,
            std=math.sqrt(max(self._d.var(self.ddof), 0.0)),
            nse=1.0 - mse / (self._r.var(self.ddof) + EPS_F32),
            cos=cos,
            acc=acc,
        )


def st_metrics(ref: np.ndarray, pred: np.ndarray, classifier: bool = False, ddof: int = 1) -> StMetrics:
    """One-shot ST metrics of two real-valued arrays (flattened)."""
    acc = StAccumulator(classifier=classifier, ddof=ddof)
    acc.add(ref, pred)
    return acc.result()


def looks_like_probabilities(x: np.ndarray, tol: float = 1e-2) -> bool:
    """ST computes accuracy when outputs "may represent probabilities": rows in [0,1] summing to 1."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2 or a.shape[1] < 2:
        return False
    if np.any(a < -tol) or np.any(a > 1 + tol):
        return False
    return bool(np.all(np.abs(a.sum(axis=1) - 1.0) <= tol))
