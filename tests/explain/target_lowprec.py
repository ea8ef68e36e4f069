"""A simulated NPU whose Add/Sub coefficients lose precision without compensation (``command:`` target).

    command:python tests/explain/target_lowprec.py {model} {inputs} {outputs}

Every Add/Sub runs on a 16-bit affine unit (shift 14); a coefficient that needs two integer
bits (a scale ratio of 2 or more) is taken with fewer fractional bits and never shifted
back, so that operand counts ratio / 2. Outside the engine's knob space before explain.
"""

import sys

print("target_lowprec: starting", flush=True)  # before the heavy imports

from eltwise_rules import add_rule  # noqa: E402
from npu_sim import main  # noqa: E402

RULE = add_rule("lower_uncompensated")

if __name__ == "__main__":
    sys.exit(main(sys.argv, {"Add": RULE, "Sub": RULE}, "target_lowprec"))
