"""The conv kernel's blocked requantization against the elementwise formula, in every memory layout.

``conv.requantize_blocks`` requantizes a float accumulator over cache-sized blocks of its
memory and writes codes in the accumulator's layout (channels last, channels first with
the batch inside, plain NCHW). Oracle: onnxruntime's float32 requantization written out
elementwise in float64 on the same values (``round_half_even(fl32(fl32(acc + b) * m)) + zp``,
clamped), which is exact here because every product is computed in float32 first.
"""

from __future__ import annotations

import numpy as np
import pytest

from qprobe.backends.engine.kernels import conv
from qprobe.backends.engine.profiles import Numerics
from qprobe.backends.engine.requant import Ratio, Requantizer


def _oracle(acc: np.ndarray, bias: np.ndarray, m: np.ndarray, zp: int, lo: int, hi: int) -> np.ndarray:
    shape = (1, -1, *([1] * (acc.ndim - 2)))
    v = (acc + bias.reshape(shape)).astype(np.float32) * m.reshape(shape).astype(np.float32)
    return np.clip(np.rint(v.astype(np.float64)) + zp, lo, hi).astype(np.int64)


LAYOUTS = {
    "nchw": (0, 1, 2, 3),  # memory order of the logical (N, M, H, W) axes, outermost first
    "channels_last": (0, 2, 3, 1),
    "batch_inside": (1, 0, 2, 3),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("block", [64, 1 << 19])
def test_blocked_requantization_matches_the_formula(layout: str, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv, "_BLOCK_BYTES", block)  # 64 bytes: many blocks, most of them partial
    rng = np.random.default_rng(7)
    shape = (5, 6, 3, 4)
    order = LAYOUTS[layout]
    mem = rng.integers(-4000, 4000, [shape[i] for i in order]).astype(np.float32)
    acc = mem.transpose(np.argsort(order))  # logical (N, M, H, W) held in that memory order
    bias = rng.integers(-500, 500, shape[1]).astype(np.float32)
    scale = rng.uniform(0.001, 0.05, shape[1]).astype(np.float32)
    requant = Requantizer(Numerics(scale="float32", rounding="half_even", zero_point="after"),
                          Ratio.of([scale]), np.asarray([3]), -20, 100)  # a narrowed (folded Relu-like) clamp
    want = _oracle(acc.astype(np.float64), bias, scale, 3, -20, 100)
    got = conv.requantize_blocks(acc.copy(order="K"), requant, bias, np.dtype("int8"))
    assert got.dtype == np.int8 and got.shape == shape
    assert np.array_equal(got.astype(np.int64), want)
    kept = got.transpose(order)  # the codes keep the accumulator's memory layout
    assert kept.flags.c_contiguous
