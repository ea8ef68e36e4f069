"""A simulated NPU whose Add saturates 16-bit coefficients and rounds half to even (``command:`` target).

    command:python tests/explain/target_saturate.py {model} {inputs} {outputs}

Every Add/Sub runs on a 16-bit affine unit (shift 14) whose output shift rounds half to
even; a scale ratio of 2 or more saturates its coefficient to 32767.
"""

import sys

print("target_saturate: starting", flush=True)  # before the heavy imports

from eltwise_rules import add_rule  # noqa: E402
from npu_sim import main  # noqa: E402

RULE = add_rule("saturate", rounding="half_even")

if __name__ == "__main__":
    sys.exit(main(sys.argv, {"Add": RULE, "Sub": RULE}, "target_saturate"))
