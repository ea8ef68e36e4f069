"""A simulated NPU whose requantizing Concat wraps 16-bit coefficients (``command:`` target).

    command:python tests/explain/target_concat.py {model} {inputs} {outputs}

Every Concat input quantized differently from the output is requantized by a 16-bit affine
unit (shift 14); a scale ratio of 2 or more wraps its coefficient. Inputs quantized like the
output are copied.
"""

import sys

print("target_concat: starting", flush=True)  # before the heavy imports

from eltwise_rules import concat_rule  # noqa: E402
from npu_sim import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv, {"Concat": concat_rule("wrap")}, "target_concat"))
