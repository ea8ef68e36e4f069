"""The ``onnxruntime`` profile is bit-exact with onnxruntime on random QDQ models.

Oracle: onnxruntime itself (``ort-fused``: ORT_ENABLE_ALL + qdqisint8allowed), on every
QuantizeLinear output of random models from ``models.generated`` (random
shapes, scales with many power-of-two ratios, zero points, per-channel weights). Seeds
and op mixes are drawn by hypothesis (derandomized, bounded examples).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ort_helpers import mismatch, run_engine, run_ort, with_q_outputs

from models.generated import ALL_OPS, DEFAULT_OPS, random_inputs, random_qdq_model

# Softmax reproduces onnxruntime's QLinearSoftmax except ~1e-5 of outputs at near-ties:
# it has its own measured test below; every other op must be bit-exact.
STRICT_OPS = tuple(op for op in ALL_OPS if op != "Softmax")
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _check(seed: int, ops: tuple[str, ...], num_ops: int, head: bool, act: str = "int8", pow2: float = 0.4) -> None:
    model = with_q_outputs(random_qdq_model(seed, ops=ops, num_ops=num_ops, head=head, activation_type=act,
                                            pow2_share=pow2, relu_nodes=seed % 2 == 1))
    feeds = random_inputs(model, 6, seed)
    ref = run_ort(model, feeds, fused=True)
    got = run_engine(model, feeds, "onnxruntime")
    assert mismatch(got, ref) == {}, f"seed {seed}, ops {ops}"


@SETTINGS
@given(seed=st.integers(0, 10**6), num_ops=st.integers(1, 7), head=st.booleans())
def test_default_op_mix_is_bit_exact_with_ort_fused(seed: int, num_ops: int, head: bool) -> None:
    _check(seed, DEFAULT_OPS, num_ops, head)


@SETTINGS
@given(seed=st.integers(0, 10**6), ops=st.lists(st.sampled_from(STRICT_OPS), min_size=1, max_size=4, unique=True),
       num_ops=st.integers(1, 5))
def test_any_op_mix_is_bit_exact_with_ort_fused(seed: int, ops: list[str], num_ops: int) -> None:
    _check(seed, tuple(ops), num_ops, head=False)


@pytest.mark.parametrize("op", STRICT_OPS)
def test_each_op_alone_with_power_of_two_scales(op: str) -> None:
    for seed in range(4):
        _check(seed, (op,), 2, head=False, pow2=1.0)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 10**6))
def test_uint8_activations(seed: int) -> None:
    _check(seed, ("Conv", "Add", "Mul", "Concat", "AveragePool", "Gemm", "MatMul"), 4, True, act="uint8")


def test_the_oracle_can_fail() -> None:
    """A profile with another Add rounding must disagree with onnxruntime on these models."""
    model = with_q_outputs(random_qdq_model(3, ops=("Add",), num_ops=3, pow2_share=1.0))
    feeds = random_inputs(model, 16, 3)
    ref = run_ort(model, feeds, fused=True)
    got = run_engine(model, feeds, "onnxruntime", {"eltwise.zero_point": "after"})
    assert mismatch(got, ref), "zero point after rounding should differ at ties"


def test_unfused_onnxruntime_share_is_measured() -> None:
    """Against ``ort`` (no fusion) only float summation order can differ; we measure how often."""
    diffs, total = 0, 0
    for seed in range(12):
        model = random_qdq_model(seed, ops=("Conv", "DepthwiseConv", "Gemm", "MatMul", "Relu"), num_ops=4, head=True)
        model = with_q_outputs(model)
        feeds = random_inputs(model, 8, seed)
        ref = run_ort(model, feeds, fused=False)
        got = run_engine(model, feeds, "onnxruntime")
        for k, v in ref.items():
            if v.dtype.kind in "iu":
                diffs += int(np.sum(got[k] != v))
                total += v.size
    assert diffs / total < 1e-3, f"{diffs}/{total} codes differ from unfused onnxruntime"


def test_softmax_differs_from_qlinearsoftmax_only_at_rare_near_ties() -> None:
    diff = total = 0
    for seed in range(60):
        model = with_q_outputs(random_qdq_model(seed, ops=("Softmax", "Conv", "Add"), num_ops=3, pow2_share=0.6))
        feeds = random_inputs(model, 6, seed)
        ref, got = run_ort(model, feeds, fused=True), run_engine(model, feeds)
        for node in model.graph.node:
            if node.op_type == "QuantizeLinear" and node.name.startswith("softmax"):
                diff += int(np.sum(got[node.output[0]] != ref[node.output[0]]))
                total += ref[node.output[0]].size
    assert total > 10**4 and diff / total < 1e-4, f"{diff}/{total}"


def test_compare_probe_all_is_exact_on_generated_models() -> None:
    """``qprobe compare --ref ort-fused --target engine:onnxruntime --probe all`` on random models."""
    from qprobe.backends.registry import create_backend
    from qprobe.compare.run import compare_backends
    from qprobe.model.inputs import InputSet
    from qprobe.model.loader import model_from_proto

    for seed in range(8):
        model = random_qdq_model(seed, ops=STRICT_OPS, num_ops=6, head=seed % 2 == 0)
        result = compare_backends(model_from_proto(model), create_backend("ort-fused"),
                                  create_backend("engine:onnxruntime"), InputSet(random_inputs(model, 16, seed), "t"),
                                  probe="all")
        assert [r.name for r in result.rows if r.verdict != "exact"] == [], f"seed {seed}"


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 10**6))
def test_wide_convs_are_bit_exact(seed: int) -> None:
    """16+ channels take the channels-last GEMM path of the correlator (fewer take channels-first)."""
    model = with_q_outputs(random_qdq_model(seed, ops=("Conv", "DepthwiseConv", "Add", "AveragePool"), num_ops=3,
                                            channels=20, pow2_share=0.5))
    feeds = random_inputs(model, 4, seed)
    assert mismatch(run_engine(model, feeds), run_ort(model, feeds, fused=True)) == {}


def test_mobilenet_like_is_bit_exact() -> None:
    from models.mobilenet import build_mobilenet_like

    model = with_q_outputs(build_mobilenet_like(1, calibration=4))
    feeds = {"image": np.random.default_rng(2).standard_normal((4, 3, 64, 64)).astype(np.float32)}
    assert mismatch(run_engine(model, feeds), run_ort(model, feeds, fused=True)) == {}
