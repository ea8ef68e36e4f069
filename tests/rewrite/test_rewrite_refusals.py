"""Each pass refuses, with a reason, where it does not apply (and says so before editing anything)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx_ir as ir
import pytest
from onnx import TensorProto
from rewrite_support import eltwise_model

from qprobe.model.loader import load_model
from qprobe.rewrite import PASSES, RatioEnvelope, RewriteContext

NARROW = RatioEnvelope("eltwise", ((0.0, 1.05),), 1.05, "exact below 1.05")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., ir.Model]:
    tmp = tmp_path_factory.mktemp("eltwise")

    def build(op: str, scales: tuple[float, float] = (0.1, 0.08), **kw: object) -> ir.Model:
        name = f"{op}_{scales[0]}_{scales[1]}_{'_'.join(f'{k}{v}' for k, v in sorted(kw.items()))}.onnx"
        return load_model(eltwise_model(tmp / name, op, scales, 0.03, **kw))  # type: ignore[arg-type]

    return build


CASES: list[tuple[str, str, str]] = [
    ("concat-conv", "tcn:block0_conv", "not a two-operand Add/Sub"),
    ("concat-conv", "Mul", "not a two-operand Add/Sub"),
    ("int16-neighbours", "Add16", "not 8-bit already"),
    ("shared-scale", "AddShared", "already share scale"),
    ("fold-residual", "Add", "no operand of op is a Conv"),
    ("fold-residual", "tcn:block0_conv", "not a two-operand Add"),
    ("raise-output-scale", "tcn:block1_add", "already inside the envelope"),
    ("requantize-operand", "tcn:block0_add:narrow", "both operands"),
    ("split-operand", "Sub", "rewrites Add ops"),
    ("swap-operands", "Sub", "not commutative"),
    ("move-relu", "Add", "no Relu is fused into op"),
    ("requantize-before", "tcn:block1_add", "already inside the envelope"),
    ("requantize-model", "tcn:block0_add:nofloat", "needs the float model and calibration data"),
    ("requantize-model", "Add", "the float model has no tensor 's'"),
    ("keep-float", "tcn:window_QuantizeLinear", "does not come from a DequantizeLinear"),
]


def _context(case: str, make_ctx: Callable[..., RewriteContext], small: Callable[..., ir.Model]) -> RewriteContext:
    if case.startswith("tcn:"):
        parts = case.split(":")
        envelope = NARROW if "narrow" in parts else make_ctx().envelope
        return make_ctx(parts[1], envelope=envelope, with_float="nofloat" not in parts)
    model = {
        "Add16": lambda: small("Add", zps=(3, -5), dtype=TensorProto.INT16),
        "AddShared": lambda: small("Add", (0.1, 0.1), zps=(3, 3)),
    }.get(case, lambda: small(case))()
    return make_ctx("op", model=model)


@pytest.mark.parametrize(("name", "case", "reason"), CASES, ids=[f"{n}-{c}" for n, c, _ in CASES])
def test_refuses_with_a_reason(name: str, case: str, reason: str, make_ctx: Callable[..., RewriteContext],
                               small: Callable[..., ir.Model]) -> None:
    ctx = _context(case, make_ctx, small)
    ok, why = PASSES[name].applies(ctx)
    result = PASSES[name].apply(ctx)
    assert not ok and not result.applied
    assert reason in why and result.reason == why
    assert result.model is ctx.model and not result.changed_nodes and not result.added_nodes


def test_every_pass_has_a_refusal_case() -> None:
    assert {n for n, _c, _r in CASES} == set(PASSES)


def test_an_unknown_node_is_refused_by_every_pass(make_ctx: Callable[..., RewriteContext]) -> None:
    ctx = make_ctx("no_such_node")
    for p in PASSES.values():
        assert p.applies(ctx) == (False, "no node named 'no_such_node' in the model")


def test_an_unknown_pass_lists_the_known_ones() -> None:
    from qprobe.errors import InputError
    from qprobe.rewrite import get_pass

    with pytest.raises(InputError, match="known: concat-conv, int16-neighbours"):
        get_pass("add-magic")


def test_small_models_are_built(tmp_path: Path) -> None:
    """The refusal cases' builder makes the QDQ group the passes look for."""
    from qprobe.rewrite import find_site

    site = find_site(load_model(eltwise_model(tmp_path / "m.onnx", "Add", (0.1, 0.08), 0.03, relu=True)), "op")
    assert not isinstance(site, str)
    assert [o.quant.scale[0] for o in site.operands] == pytest.approx([0.1, 0.08])
    assert [n.op_type for n in site.chain] == ["Relu"]


def test_requantize_model_refuses_calibration_data_without_the_model_input(tmp_path: Path, tcn: ir.Model,
                                                                            tcn_dir: Path) -> None:
    import numpy as np

    bad = tmp_path / "calibration.npz"
    np.savez(bad, x=np.zeros((2, 8, 1, 64), np.float32))
    ctx = RewriteContext(tcn, "block0_add", RatioEnvelope("eltwise", ((0.0, 2.0),), 2.0), {}, None,
                         tcn_dir / "tcn_float.onnx", bad)
    ok, why = PASSES["requantize-model"].applies(ctx)
    assert not ok and "no array for the float model's input(s) ['window']" in why
