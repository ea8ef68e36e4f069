"""A simulated NPU whose Conv accumulates in 16 saturating bits and requantizes in fixed point (``command:`` target).

    command:python tests/explain/target_conv.py {model} {inputs} {outputs}

Every Conv (group 1, explicit pads) sums ``(x - zx) * w`` plus its bias into an accumulator
that saturates at 16 bits, then multiplies by a 16-bit fixed-point multiplier per channel
(from ``sx * sw / sy`` in double) and rounds half up. Convs whose accumulators stay within
16 bits are exact up to rounding; the others clip.
"""

import sys

print("target_conv: starting", flush=True)  # before the heavy imports

import numpy as np  # noqa: E402
from npu_arith import conv_acc, fixed_requant  # noqa: E402
from npu_sim import Compute, Group, main  # noqa: E402


def conv_rule(g: Group) -> Compute | None:
    if len(g.inputs) != 1 or 1 not in g.consts or int(g.attrs.get("group", 1)) != 1 or "auto_pad" in g.attrs:
        return None
    w, sw, zw = g.consts[1]
    nd = w.ndim - 2
    pads = list(g.attrs.get("pads", [0] * 2 * nd))
    strides = list(g.attrs.get("strides", [1] * nd))
    dilations = list(g.attrs.get("dilations", [1] * nd))
    (sx, zx), (so, zo, _dt) = g.in_q[0], g.out_q
    bias = g.consts[2][0].astype(np.int64) if 2 in g.consts else np.zeros(w.shape[0], np.int64)
    sw64 = np.broadcast_to(np.asarray(sw, np.float32).astype(np.float64).reshape(-1), (w.shape[0],))
    m = float(np.float32(sx)) * sw64 / float(np.float32(so))
    wc = w.astype(np.int64) - np.asarray(zw, np.int64).reshape([-1] + [1] * (w.ndim - 1))
    lo, hi = g.qrange

    def fn(codes: list[np.ndarray]) -> np.ndarray:
        acc = conv_acc(codes[0], wc, int(zx), pads, strides, dilations)
        acc = np.clip(acc + bias.reshape([1, -1] + [1] * nd), -(2**15), 2**15 - 1)
        return fixed_requant(acc, m, 16, zo, lo, hi).astype(np.int8)

    return Compute(fn)


if __name__ == "__main__":
    sys.exit(main(sys.argv, {"Conv": conv_rule}, "target_conv"))
