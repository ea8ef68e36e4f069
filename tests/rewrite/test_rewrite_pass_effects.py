"""What each pass does to the numbers, checked against independent oracles: onnxruntime runs
of both models, the initializers read with plain onnx, and closed-form rounding bounds.

Float equivalence where a pass claims it (``swap-operands``, ``keep-float``: identical outputs
in onnxruntime's float path); elsewhere the deviation of the culprit's output codes is bounded
by the rounding the rewrite adds, and the measures a pass reports (clipping) are recomputed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from rewrite_support import (
    BOUNDARY,
    inits,
    node,
    operand_params,
    ort_run,
    output_q,
    producer,
    proto_of,
    qparams,
)

from qprobe.rewrite import RewriteResult
from qprobe.rewrite.envelope import MARGIN

CULPRIT_CODES = "block0_relu_out_QuantizeLinear_Output"
AIM = BOUNDARY * (1 - MARGIN)
S_A, S_B, S_O = 0.0313725620508194, 0.016221908852458, 0.015303689055144787  # block0_add, from the example's JSON


def _codes(model: object, windows: dict[str, np.ndarray], tensor: str = CULPRIT_CODES) -> np.ndarray:
    return ort_run(proto_of(model), windows, [tensor])[tensor].astype(np.int32)


def _r(applied: dict[str, object], name: str) -> RewriteResult:
    r = applied[name]
    assert isinstance(r, RewriteResult) and r.applied
    return r


@pytest.mark.parametrize("name", ["swap-operands", "keep-float"])
def test_claimed_float_equivalence_holds_in_onnxruntime(applied: dict[str, object], tcn: object, name: str,
                                                        windows: dict[str, np.ndarray]) -> None:
    r = _r(applied, name)
    assert r.float_exact
    a, b = ort_run(proto_of(tcn), windows, [CULPRIT_CODES]), ort_run(proto_of(r.model), windows, [CULPRIT_CODES])
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_no_other_pass_claims_float_equivalence(applied: dict[str, object]) -> None:
    assert {k for k, r in applied.items() if isinstance(r,
                                                        RewriteResult)
            and r.float_exact} == {"swap-operands", "keep-float"}


def test_raise_output_scale_puts_the_largest_ratio_at_the_aim(applied: dict[str, object], tcn: object,
                                                             windows: dict[str, np.ndarray]) -> None:
    p = proto_of(_r(applied, "raise-output-scale").model)
    add = node(p, "block0_add")
    (sa, _za, _), (sb, _zb, _) = operand_params(p, add)
    so, zo, _ = qparams(p, output_q(p, add))
    assert max(sa, sb) / so == pytest.approx(AIM, rel=1e-6) and zo == -128
    reader = producer(p, "block0_relu_out_DequantizeLinear_Output")
    assert reader is not None and qparams(p, reader)[:2] == (so, zo)  # the consumers read the new scale
    old, new = _codes(tcn, windows), _codes(_r(applied, "raise-output-scale").model, windows)
    # the same float sum rounded to two grids: at most half an LSB of each apart (unclipped values)
    keep = (old < 127) & (new < 127)
    gap = np.abs((new[keep] + 128) * so - (old[keep] + 128) * S_O)
    assert gap.max() <= 0.5 * (so + S_O) + 1e-6


def _clipped(values: np.ndarray, scale: float, zp: int) -> float:
    lo, hi = (-128 - zp) * scale - scale / 2, (127 - zp) * scale + scale / 2
    return float(np.mean((values < lo) | (values > hi)))


def test_requantize_operand_clips_least_and_reports_it(applied: dict[str, object], values: object) -> None:
    r = _r(applied, "requantize-operand")
    p = proto_of(r.model)
    (sa, za, _), _b = operand_params(p, node(p, "block0_add"))
    assert sa / S_O == pytest.approx(AIM, rel=1e-6)
    # type: ignore[operator]
    v = values(["input_proj_out_DequantizeLinear_Output"])["input_proj_out_DequantizeLinear_Output"]
    best = min(_clipped(v, sa, z) for z in range(-128, 128))
    assert r.measures["operand_clipped_share"] == pytest.approx(_clipped(v, sa, za)) == pytest.approx(best)


def test_requantize_before_reads_every_operand_at_the_output_scale(applied: dict[str, object], values: object) -> None:
    r = _r(applied, "requantize-before")
    p = proto_of(r.model)
    params = operand_params(p, node(p, "block0_add"))
    assert [s for s, _z, _d in params] == pytest.approx([S_O, S_O], rel=1e-7)
    # type: ignore[operator]
    v = values(["input_proj_out_DequantizeLinear_Output"])["input_proj_out_DequantizeLinear_Output"]
    assert r.measures["operand0_clipped_share"] == pytest.approx(_clipped(v, S_O, params[0][1]))
    assert r.measures["operand0_clipped_share"] > 0.005  # the wide projection does not fit the output's range


def test_split_operand_halves_exactly_and_both_steps_are_inside(applied: dict[str, object], tcn: object,
                                                               windows: dict[str, np.ndarray]) -> None:
    r = _r(applied, "split-operand")
    p = proto_of(r.model)
    step2, step1 = node(p, "block0_add"), node(p, "block0_add_half_step")
    half = producer(p, step2.input[0])
    assert half is not None and half.input[0] == "input_proj_out_QuantizeLinear_Output"
    assert qparams(p, half)[0] == np.float32(S_A) / 2  # the same codes read at half the scale: exact
    st = qparams(p, output_q(p, step1))[0]
    for op in (step1, step2):
        so = qparams(p, output_q(p, op))[0]
        assert all(s / so < BOUNDARY for s, _z, _d in operand_params(p, op))
    bound = math.ceil(st / (2 * S_O)) + 1
    assert np.abs(_codes(r.model, windows) - _codes(tcn, windows)).max() <= bound


def test_move_relu_keeps_the_output_and_widens_the_op(applied: dict[str, object], tcn: object,
                                                      windows: dict[str, np.ndarray]) -> None:
    r = _r(applied, "move-relu")
    p = proto_of(r.model)
    q_out = node(p, "block0_relu_out_QuantizeLinear")
    relu = producer(p, q_out.input[0])
    assert relu is not None and relu.op_type == "Relu"
    assert qparams(p, q_out)[:2] == (np.float32(S_O), -128)
    sp = qparams(p, output_q(p, node(p, "block0_add")))[0]
    assert max(S_A, S_B) / sp == pytest.approx(AIM, rel=1e-6)
    assert np.abs(_codes(r.model, windows) - _codes(tcn, windows)).max() <= math.ceil(sp / (2 * S_O)) + 1


def test_shared_scale_gives_both_operands_the_union_range(applied: dict[str, object]) -> None:
    p = proto_of(_r(applied, "shared-scale").model)
    (sa, za, _), (sb, zb, _) = operand_params(p, node(p, "block0_add"))
    lo = min((-128 - 2) * S_A, (-128 - 1) * S_B)
    hi = max((127 - 2) * S_A, (127 - 1) * S_B)
    assert (sa, za) == (sb, zb) and sa == pytest.approx((hi - lo) / 255, rel=1e-6)
    assert sa / qparams(p, output_q(p, node(p, "block0_add")))[0] > BOUNDARY  # still outside: as on the board


def test_int16_keeps_every_ratio(applied: dict[str, object]) -> None:
    p = proto_of(_r(applied, "int16-neighbours").model)
    add = node(p, "block0_add")
    ops, out = operand_params(p, add), qparams(p, output_q(p, add))
    assert all(d == np.int16 for _s, _z, d in ops) and out[2] == np.int16
    assert [s / out[0] for s, _z, _d in ops] == pytest.approx([S_A / S_O, S_B / S_O], rel=1e-4)
    assert p.opset_import[0].version == 21


def test_concat_conv_weights_are_two_identities(applied: dict[str, object], tcn: object,
                                               windows: dict[str, np.ndarray]) -> None:
    r = _r(applied, "concat-conv")
    p = proto_of(r.model)
    assert "block0_add" in r.removed_nodes
    conv = node(p, "block0_add_conv")
    assert conv.output[0] == "block0_relu_out"  # the Add's output tensor keeps its name
    wdq = producer(p, conv.input[1])
    i = inits(p)
    assert wdq is not None
    w = (i[wdq.input[0]].astype(np.float64) * i[wdq.input[1]].reshape(-1, 1, 1, 1))[:, :, 0, 0]
    assert np.array_equal(w, np.hstack([np.eye(32), np.eye(32)]))
    sc = qparams(p, output_q(p, node(p, "block0_add_concat")))[0]
    assert np.abs(_codes(r.model, windows) - _codes(tcn, windows)).max() <= math.ceil(sc / S_O) + 1


def test_fold_residual_adds_the_identity_to_the_aligned_tap(applied: dict[str, object], tcn: object,
                                                           windows: dict[str, np.ndarray]) -> None:
    r = _r(applied, "fold-residual")
    before, after = proto_of(tcn), proto_of(r.model)
    assert "block0_add" in r.removed_nodes

    def weights(p: object) -> tuple[np.ndarray, np.ndarray]:
        dq = producer(p, node(p, "block0_conv").input[1])  # type: ignore[arg-type]
        i = inits(p)  # type: ignore[arg-type]
        s = i[dq.input[1]].astype(np.float64)  # type: ignore[union-attr]
        return i[dq.input[0]] * s.reshape(-1, 1, 1, 1), s  # type: ignore[union-attr]

    (w0, s0), (w1, s1) = weights(before), weights(after)
    eye = np.zeros_like(w0)
    eye[np.arange(32), np.arange(32), 0, 2] = 1.0  # pads 2d, start 0, dilation d: tap 2 reads x[t]
    err = np.abs(w1 - w0 - eye)
    assert np.all(err <= (s0 + s1).reshape(-1, 1, 1, 1) / 2 + 1e-7)
    a, b = _codes(tcn, windows), _codes(r.model, windows)
    real_a, real_b = (a + 128) * S_O, (b + 128) * S_O
    cos = float(real_a.ravel() @ real_b.ravel() / np.linalg.norm(real_a) / np.linalg.norm(real_b))
    assert cos > 0.999 and np.mean(np.abs(a - b) <= 1) > 0.95  # measured: weights re-rounded once


def test_requantize_model_pins_the_output_and_keeps_the_names(applied: dict[str, object], tcn: object) -> None:
    r = _r(applied, "requantize-model")
    p = proto_of(r.model)
    add = node(p, "block0_add")
    so = qparams(p, output_q(p, add))[0]
    assert max(s for s, _z, _d in operand_params(p, add)) / so == pytest.approx(AIM, rel=1e-6)
    assert {n.name for n in p.graph.node} == {n.name for n in proto_of(tcn).graph.node}


def test_keep_float_is_computed_in_float_by_the_engine(applied: dict[str, object],
                                                       windows: dict[str, np.ndarray]) -> None:
    """On engine:arith16-wrap the defect was in the Add's integer unit: in float it is gone."""
    from qprobe.backends import create_backend
    from qprobe.model.inputs import InputSet
    from qprobe.model.probe import apply_probe_plan, plan_probes
    from qprobe.model.quant import build_quant_index

    m = _r(applied, "keep-float").model
    probed = apply_probe_plan(m, plan_probes(m, build_quant_index(m), [CULPRIT_CODES]))
    got = create_backend("engine:arith16-wrap").open(probed).run(InputSet(windows, "t").arrays)[CULPRIT_CODES]
    assert np.abs(got.astype(np.int32) - _codes(m, windows)).max() <= 1
