"""Every path of ``kernels.correlate.Correlator`` against a naive loop over output positions.

Oracle: exact integer correlation computed position by position in Python ints (no numpy
BLAS, no strided views), for 1-D, 2-D and 3-D windows with strides, dilations, explicit and
SAME padding, groups and depthwise convs, on one sample and on batches, with inputs held
channels first and channels last in memory (the two layouts take different paths).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qprobe.backends.engine.kernels.correlate import Correlator
from qprobe.backends.engine.kernels.window import Window


def _naive(x: np.ndarray, w: np.ndarray, group: int, window: Window, pad: int) -> np.ndarray:
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    begin, _end, out = window.resolve(x.shape[2:])
    res = np.zeros((n, *out, m), dtype=np.int64)
    mg = m // group
    for pos in itertools.product(*(range(o) for o in out)):
        for tap in itertools.product(*(range(k) for k in window.kernel)):
            coord = [p * s + t * d - b for p, s, t, d, b in
                     zip(pos, window.strides, tap, window.dilations, begin, strict=True)]
            inside = all(0 <= q < size for q, size in zip(coord, x.shape[2:], strict=True))
            for oc in range(m):
                g = oc // mg
                xs = x[(slice(None), slice(g * cg, (g + 1) * cg), *coord)] if inside else np.full((n, cg), pad)
                res[(slice(None), *pos, oc)] += (xs.astype(np.int64) * w[(oc, slice(None), *tap)]).sum(axis=1)
    return res


CASES = [
    # (input shape, weight shape, group, attrs)
    ((2, 4, 1, 9), (3, 4, 1, 3), 1, {"pads": [0, 2, 0, 2], "dilations": [1, 2]}),
    ((1, 3, 7), (5, 3, 3), 1, {"strides": [2], "pads": [1, 1]}),
    ((2, 6, 5, 6), (4, 3, 3, 2), 2, {"pads": [1, 0, 1, 1]}),
    ((1, 4, 6, 6), (4, 1, 3, 3), 4, {"auto_pad": "SAME_UPPER"}),
    ((1, 2, 4, 4, 3), (3, 2, 2, 2, 2), 1, {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 1]}),
    ((3, 20, 1, 12), (8, 20, 1, 3), 1, {"pads": [0, 4, 0, 4], "dilations": [1, 4]}),
]


def _channels_last_memory(x: np.ndarray) -> np.ndarray:
    """The same values held channels innermost (what a channels-last kernel hands on)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)).transpose(0, x.ndim - 1, *range(1, x.ndim - 1))


@pytest.mark.parametrize("layout", ["nchw", "channels_last_memory"])
@pytest.mark.parametrize(("xs", "ws", "group", "attrs"), CASES)
def test_correlator_matches_a_naive_loop(xs: tuple[int, ...], ws: tuple[int, ...], group: int,
                                         attrs: dict[str, object], layout: str) -> None:
    rng = np.random.default_rng(len(xs) + sum(ws))
    x = rng.integers(-128, 128, xs).astype(np.int8)
    if layout == "channels_last_memory":
        x = _channels_last_memory(x)
    w = rng.integers(-127, 128, ws).astype(np.int64)
    window = Window.from_attrs(attrs, ws[2:])
    corr = Correlator(w, group, window, np.float32, order="kc")
    got = corr(x, pad_value=-3)
    want = _naive(x, w, group, window, -3)
    assert got.shape == want.shape
    assert np.array_equal(got.astype(np.int64), want)
    again = corr(x[:1], pad_value=-3)  # a second input shape: its own plan
    assert np.array_equal(again.astype(np.int64), want[:1])
    assert np.array_equal(corr.nchw(x, pad_value=-3).astype(np.int64), np.moveaxis(want, -1, 1))


SINGLE = [
    # one sample: the channels-first paths (GEMM per group, depthwise over stride phases)
    ((1, 6, 9, 8), (6, 1, 3, 3), 6, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 7, 10), (8, 1, 3, 2), 4, {"strides": [1, 3], "dilations": [2, 1], "pads": [2, 0, 1, 2]}),
    ((1, 5, 11), (5, 1, 4), 5, {"strides": [3], "dilations": [2], "pads": [3, 1]}),
    ((1, 3, 4, 5, 6), (3, 1, 2, 3, 2), 3, {"strides": [2, 1, 2], "pads": [1, 1, 0, 0, 1, 1]}),
    ((1, 16, 4, 4), (16, 1, 3, 3), 16, {"auto_pad": "SAME_LOWER"}),
    ((1, 6, 5, 7), (4, 3, 2, 3), 2, {"strides": [2, 1], "pads": [0, 1, 1, 1]}),
    ((1, 8, 6, 6), (12, 8, 1, 1), 1, {}),
    ((1, 8, 6, 6), (12, 4, 1, 1), 2, {}),
    ((1, 32, 1, 20), (16, 32, 1, 3), 1, {"pads": [0, 4, 0, 4], "dilations": [1, 4]}),
]


@pytest.mark.parametrize(("xs", "ws", "group", "attrs"), SINGLE)
@pytest.mark.parametrize("layout", ["nchw", "channels_last_memory"])
def test_single_sample_paths_match_a_naive_loop(xs: tuple[int, ...], ws: tuple[int, ...], group: int,
                                                attrs: dict[str, object], layout: str) -> None:
    rng = np.random.default_rng(sum(xs) + len(ws))
    x = rng.integers(-128, 128, xs).astype(np.int8)
    if layout == "channels_last_memory":
        x = _channels_last_memory(x)
    w = rng.integers(-127, 128, ws).astype(np.int64)
    window = Window.from_attrs(attrs, ws[2:])
    corr = Correlator(w, group, window, np.float32, order="kc")
    want = _naive(x, w, group, window, 5)
    assert np.array_equal(corr(x, pad_value=5).astype(np.int64), want)
    first = corr.nchw(x, pad_value=5)
    assert np.array_equal(first.astype(np.int64), np.moveaxis(want, -1, 1))
    batch = np.concatenate([x, x[:, :, ::-1]])  # two samples: the batched paths
    both = np.moveaxis(_naive(batch, w, group, window, 5), -1, 1)
    assert np.array_equal(corr.nchw(batch, pad_value=5).astype(np.int64), both)
    if layout == "channels_last_memory":
        cl = _channels_last_memory(batch)
        assert np.array_equal(corr.nchw(cl, pad_value=5).astype(np.int64), both)


CHUNKED = [  # batches whose chunk loops run many times with tiny chunks: depthwise, pointwise, grouped
    ((5, 6, 9, 8), (6, 1, 3, 3), 6, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((4, 16, 6, 6), (16, 1, 3, 3), 16, {"auto_pad": "SAME_LOWER"}),
    ((4, 4, 7, 10), (8, 1, 3, 2), 4, {"strides": [1, 3], "dilations": [2, 1], "pads": [2, 0, 1, 2]}),
    ((6, 8, 6, 6), (12, 8, 1, 1), 1, {}),
    ((4, 16, 5, 5), (24, 16, 1, 1), 1, {}),  # channels-last memory: the pointwise row blocks
    ((3, 20, 1, 12), (8, 20, 1, 3), 1, {"pads": [0, 4, 0, 4], "dilations": [1, 4]}),
]


@pytest.mark.parametrize("chunk", [64, 4096])
@pytest.mark.parametrize(("xs", "ws", "group", "attrs"), CHUNKED)
@pytest.mark.parametrize("layout", ["nchw", "channels_last_memory"])
def test_chunked_loops_match_a_naive_loop(xs: tuple[int, ...], ws: tuple[int, ...], group: int,
                                          attrs: dict[str, object], layout: str, chunk: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With chunks of a few samples, channels or rows (the default is several MB, so the tests'
    small inputs would run one chunk), every chunk loop and the blockwise finishing agree with
    the naive loop, on plain and requantizing (``finished``) calls."""
    from qprobe.backends.engine.kernels import correlate

    monkeypatch.setattr(correlate, "_CHUNK_BYTES", chunk)
    rng = np.random.default_rng(sum(xs) * 7 + len(ws))
    x = rng.integers(-128, 128, xs).astype(np.int8)
    if layout == "channels_last_memory":
        x = _channels_last_memory(x)
    w = rng.integers(-127, 128, ws).astype(np.int64)
    window = Window.from_attrs(attrs, ws[2:])
    want = np.moveaxis(_naive(x, w, group, window, 2), -1, 1)
    for prefer_last in (False, True):
        corr = Correlator(w, group, window, np.float32, order="kc", prefer_last=prefer_last)
        assert np.array_equal(corr.nchw(x, pad_value=2).astype(np.int64), want)

        def finish(block: np.ndarray, out: np.ndarray) -> None:
            np.rint(block, out=block)
            out[...] = block

        done = corr.finished(x, 2.0, finish, np.dtype(np.int32))
        if done is not None:
            assert np.array_equal(done.astype(np.int64), want)
