"""Every pass on the TCN's block-0 Add: applies, builds a valid model that onnxruntime runs,
keeps every node and tensor name it does not replace, keeps int8 QDQ where it was, and
reports what it changed and what it costs as a plain-onnx diff of the two models says."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from rewrite_support import ort_run, proto_of

from qprobe.model.loader import model_bytes
from qprobe.rewrite import PASSES, RewriteResult

NAMES = list(PASSES)
WIDE = {"int16-neighbours"}  # moves the op's tensors to int16 on purpose
QDQ = ("QuantizeLinear", "DequantizeLinear", "Constant")


def _result(applied: dict[str, object], name: str) -> RewriteResult:
    r = applied[name]
    assert isinstance(r, RewriteResult)
    assert r.applied, f"{name} refused: {r.reason}"
    return r


@pytest.mark.parametrize("name", NAMES)
def test_the_model_is_valid_and_runs_in_onnxruntime(applied: dict[str, object], name: str,
                                                    windows: dict[str, np.ndarray]) -> None:
    proto = proto_of(_result(applied, name).model)
    onnx.checker.check_model(proto, full_check=True)
    for fused in (False, True):
        out = ort_run(proto, windows, fused=fused)
        assert out["log_conc"].shape == (64, 1) and np.isfinite(out["log_conc"]).all()


@pytest.mark.parametrize("name", NAMES)
def test_kept_names_are_unchanged(applied: dict[str, object], name: str, tcn: ir.Model) -> None:
    r = _result(applied, name)
    before, after = proto_of(tcn), proto_of(r.model)
    removed = set(r.removed_nodes)
    nodes_after = {n.name for n in after.graph.node}
    tensors_after = {o for n in after.graph.node for o in n.output}
    for n in before.graph.node:
        if n.name in removed:
            continue
        assert n.name in nodes_after, f"{name} lost or renamed node {n.name}"
        assert all(o in tensors_after for o in n.output), f"{name} renamed an output of {n.name}"
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    assert [i.name for i in after.graph.input] == [i.name for i in before.graph.input]
    assert set(r.added_nodes) == nodes_after - {n.name for n in before.graph.node}
    assert removed == {n.name for n in before.graph.node} - nodes_after


@pytest.mark.parametrize("name", sorted(set(NAMES) - WIDE))
def test_int8_qdq_stays_int8(applied: dict[str, object], name: str) -> None:
    proto = proto_of(_result(applied, name).model)
    zps = {t.name: t.data_type for t in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[0] not in zps:
            assert zps[n.input[2]] == onnx.TensorProto.INT8, f"{name}: {n.name} is not int8"


@pytest.mark.parametrize("name", NAMES)
def test_cost_is_the_diff_of_the_two_models(applied: dict[str, object], name: str, tcn: ir.Model) -> None:
    r = _result(applied, name)
    before, after = proto_of(tcn), proto_of(r.model)

    def ops(p: onnx.ModelProto) -> int:
        return sum(1 for n in p.graph.node if n.op_type not in QDQ)

    def params(p: onnx.ModelProto) -> int:
        return sum(onnx.numpy_helper.to_array(t).nbytes for t in p.graph.initializer)

    assert r.cost.ops_added == ops(after) - ops(before)
    assert r.cost.param_bytes_added == params(after) - params(before)
    assert (r.cost.ops_off_accelerator > 0) == (name in {"keep-float", "int16-neighbours"})


def test_passes_leave_the_given_model_untouched(make_ctx: object, tcn: ir.Model) -> None:
    digest = hashlib.sha256(model_bytes(tcn)).hexdigest()
    ctx = make_ctx()  # type: ignore[operator]
    for p in PASSES.values():
        p.apply(ctx)
    assert hashlib.sha256(model_bytes(tcn)).hexdigest() == digest


def test_concat_conv_macs_are_the_1x1_conv(applied: dict[str, object]) -> None:
    """32 output channels x 64 concatenated inputs x 64 time steps per sample."""
    assert _result(applied, "concat-conv").cost.macs_added == 32 * 64 * 64


@pytest.fixture(scope="module")
def residual(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    """Another shape of residual block: 3x3 convs on images, the residual being the first conv's output."""
    from qprobe.model.loader import load_model

    from models.residual import qdq_residual_model

    return load_model(qdq_residual_model(tmp_path_factory.mktemp("residual")))


@pytest.mark.parametrize("name", NAMES)
def test_every_pass_on_a_second_model_is_valid_or_refuses(residual: ir.Model, name: str) -> None:
    from qprobe.rewrite import RatioEnvelope, RewriteContext

    # an envelope that puts the Add's second operand (ratio ~1.76) outside, the first (~1.02) inside
    env = RatioEnvelope("eltwise", ((0.0, 1.2),), 1.2, "exact below 1.2")
    r = PASSES[name].apply(RewriteContext(residual, "add", env, {"concat": env}))
    if not r.applied:
        assert r.reason and name == "requantize-model"  # no float model given
        return
    proto = proto_of(r.model)
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 8, 8)).astype(np.float32)
    ref, out = ort_run(proto_of(residual), {"x": x})["y"], ort_run(proto, {"x": x})["y"]
    assert out.shape == ref.shape and np.isfinite(out).all()
    kept = {n.name for n in proto.graph.node}
    assert {n.name for n in proto_of(residual).graph.node} - set(r.removed_nodes) <= kept


@pytest.mark.parametrize("name", NAMES)
def test_every_pass_on_an_add_with_an_explicit_relu(tmp_path: pytest.TempPathFactory, name: str) -> None:
    """Add -> Relu -> QuantizeLinear written by hand (the quantizer would fold the Relu): the chain is
    kept after the op (or moved after the new output quantization by move-relu)."""
    from rewrite_support import eltwise_model

    from qprobe.model.loader import load_model
    from qprobe.rewrite import RatioEnvelope, RewriteContext

    # type: ignore[operator]
    path = eltwise_model(tmp_path / "relu.onnx", "Add", (0.1, 0.08), 0.03, relu=True, out_zp=-128)
    model = load_model(path)
    env = RatioEnvelope("eltwise", ((0.0, 2.0),), 2.0)
    r = PASSES[name].apply(RewriteContext(model, "op", env, {"concat": env}))
    if not r.applied:
        assert name in {"requantize-model", "fold-residual", "requantize-operand"} and r.reason  # both outside
        return
    proto = proto_of(r.model)
    onnx.checker.check_model(proto, full_check=True)
    rng = np.random.default_rng(1)
    feeds = {k: rng.uniform(-3, 3, (5, 4, 1, 8)).astype(np.float32) for k in "ab"}
    ref, out = ort_run(proto_of(model), feeds)["y"], ort_run(proto, feeds)["y"]
    assert (out >= 0).all()  # the Relu still applies
    if r.float_exact:
        assert np.array_equal(ref, out)
    relus = [n for n in proto.graph.node if n.op_type == "Relu"]
    assert len(relus) == 1
