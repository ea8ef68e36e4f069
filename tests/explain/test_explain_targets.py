"""explain finds what each simulated NPU computes, and its fitted profile reproduces the target.

Targets: ``engine:arith16-wrap`` on the TCN, and four ``command:`` scripts whose arithmetic
is written independently of the engine and chosen by a rule on scales: coefficients at
lower precision without compensation (outside the engine's knob space before explain),
a Conv with a 16-bit saturating accumulator and a 16-bit fixed-point multiplier, a
requantizing Concat that wraps 16-bit coefficients (another model), and an Add that
saturates its coefficient and rounds half to even (the residual model). Oracle for the
profile: a fresh ``compare --probe all --tol cos=0.999`` of the target against
``engine:<fitted>.toml`` on every tensor. Runs are counted by a wrapper around the target.
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir
import pytest
from explain_support import Counting, command_target

from qprobe.backends import Backend, create_backend
from qprobe.compare import compare_backends, parse_policy
from qprobe.explain import Explanation, explain
from qprobe.model.inputs import InputSet

pytestmark = pytest.mark.slow


def explain_and_check(model: ir.Model, inputs: InputSet, target: Backend, tmp_path: Path) -> Explanation:
    counted = Counting(target)
    out = tmp_path / "fitted.toml"
    e = explain(model, create_backend("ort-fused"), counted, inputs, profile_out=out)
    assert e.explained, (e.notes, [h.label() for h in e.hypotheses[:3]])
    assert e.best is not None and e.best.exact_match >= 0.999
    assert e.target_runs == counted.opened
    assert out.read_text() == e.profile
    cmp = compare_backends(model, target, create_backend(f"engine:{out}"), inputs, probe="all",
                           policy=parse_policy("cos=0.999", None), check_probe_effect=False)
    failing = [(r.name, r.reason) for r in cmp.rows if r.failed]
    assert not failing, failing
    assert e.profile_passes
    return e


def test_arith16_wrap_on_the_tcn(tcn: tuple[ir.Model, InputSet], tmp_path: Path) -> None:
    model, inputs = tcn
    e = explain_and_check(model, inputs, create_backend("engine:arith16-wrap"), tmp_path)
    assert e.node == "block0_add"
    assert e.best is not None and e.best.numerics("Add").coeff_overflow == "wrap"
    assert "operand 1" in e.sentence and "2.05" in e.sentence


def test_lower_precision_without_compensation(tcn: tuple[ir.Model, InputSet], tmp_path: Path) -> None:
    model, inputs = tcn
    e = explain_and_check(model, inputs, command_target("target_lowprec.py"), tmp_path)
    assert e.node == "block0_add"
    assert e.best is not None and e.best.numerics("Add").coeff_overflow == "lower_uncompensated"
    assert "scaled by 1.03 instead of 2.05" in e.sentence  # 2.05 / 2: the lost bit never restored


def test_conv_with_a_saturating_accumulator(tcn: tuple[ir.Model, InputSet], tmp_path: Path) -> None:
    model, inputs = tcn
    e = explain_and_check(model, inputs, command_target("target_conv.py"), tmp_path)
    assert e.op_class == "conv"
    assert e.best is not None
    num = e.best.numerics("Conv")
    assert (num.acc_bits, num.acc_overflow, num.scale, num.multiplier_bits, num.rounding) == \
        (16, "saturate", "fixed", 16, "half_up")
    assert "saturation" in e.sentence


def test_requantizing_concat_on_another_model(other_models: dict[str, tuple[ir.Model, InputSet]],
                                              tmp_path: Path) -> None:
    model, inputs = other_models["concat"]
    e = explain_and_check(model, inputs, command_target("target_concat.py"), tmp_path)
    assert e.op_type == "Concat" and e.op_class == "concat"
    assert e.best is not None
    num = e.best.numerics("Concat")
    assert (num.structure, num.coeff_bits, num.coeff_overflow) == ("affine", 16, "wrap")


def test_saturating_add_on_the_residual_model(other_models: dict[str, tuple[ir.Model, InputSet]],
                                              tmp_path: Path) -> None:
    model, inputs = other_models["residual"]
    e = explain_and_check(model, inputs, command_target("target_saturate.py"), tmp_path)
    assert e.best is not None
    num = e.best.numerics("Add")
    assert (num.structure, num.coeff_overflow, num.rounding) == ("affine", "saturate", "half_even")
    assert "scaled by 2 instead of 2.04" in e.sentence
