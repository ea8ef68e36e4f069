"""A simulated NPU that corrupts a residual Add's output at pseudo-random positions (``command:`` target).

    command:python tests/explain/target_bitflips.py {model} {inputs} {outputs}

The arithmetic is onnxruntime's; but for every Add whose larger operand scale ratio is 2 or
more (a rule on scales), 3% of its output codes, at positions drawn from a fixed seed and
independent of the values, get bit 6 flipped, the way a memory or DMA fault would.
"""

import sys

print("target_bitflips: starting", flush=True)  # before the heavy imports

import numpy as np  # noqa: E402
from npu_sim import Corrupt, Group, main  # noqa: E402


def flip_rule(g: Group) -> Corrupt | None:
    if len(g.inputs) != 2:
        return None
    ratios = [float(np.asarray(s).reshape(-1)[0]) / g.out_q[0] for s, _z in g.in_q]
    if max(ratios) < 2.0:
        return None

    def fn(codes: np.ndarray) -> np.ndarray:
        hit = np.random.default_rng(20260701).random(codes.shape) < 0.03
        return np.where(hit, codes.view(np.uint8) ^ np.uint8(0x40), codes.view(np.uint8)).view(np.int8)

    return Corrupt(fn)


if __name__ == "__main__":
    sys.exit(main(sys.argv, {"Add": flip_rule}, "target_bitflips"))
