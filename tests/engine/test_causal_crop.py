"""Causal convolutions compute only the positions their Slice keeps (backends/engine/crop.py).

Oracle: onnxruntime (``ort-fused``, whose integer kernels the ``onnxruntime`` profile
reproduces bit for bit) on the unprobed model, where the crop applies, and on a model whose
conv output is a graph output, where it must not.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from qprobe.backends.engine import EngineBackend, get_profile
from qprobe.examples.tcn import packaged_example_dir

from models.corpus import Built


def _fused(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _wide(samples: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {k: rng.uniform(1.2 * float(v.min()), 1.2 * float(v.max()), (n, *v.shape[1:])).astype(v.dtype)
            for k, v in samples.items()}


def _crops(session: object) -> dict[str, object]:
    return {s.node: s.kernel for s in session.program.steps}  # type: ignore[attr-defined]


@pytest.mark.parametrize("n", [1, 64])
def test_the_chomp_tcn_is_cropped_and_exact(corpus: dict[str, Built], n: int) -> None:
    built = corpus["tcn_chomp"]
    proto = onnx.load(built.int8)
    from qprobe.backends.engine.crop import causal_crops
    from qprobe.backends.engine.fold import static_dims
    from qprobe.backends.engine.graph import plan_units, read_graph

    view = read_graph(ir.from_proto(proto))
    _view, crops = causal_crops(view, plan_units(view), lambda: static_dims(ir.from_proto(proto)))
    assert crops == {"block0_conv": (24,), "block1_conv": (24,), "block2_conv": (24,)}
    session = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(proto))
    feeds = _wide(built.samples(), n)
    want = _fused(proto).run(None, feeds)
    got = session.run(feeds)
    for out, w in zip(proto.graph.output, want, strict=True):
        assert np.array_equal(got[out.name], w), out.name


def test_the_example_tcn_is_cropped_and_exact() -> None:
    proto = onnx.load(packaged_example_dir() / "tcn_int8.onnx")
    from qprobe.backends.engine.crop import causal_crops
    from qprobe.backends.engine.graph import plan_units, read_graph

    view = read_graph(ir.from_proto(proto))
    _view, crops = causal_crops(view, plan_units(view), lambda: {})
    assert sorted(crops) == [f"block{i}_conv" for i in range(6)] and set(crops.values()) == {(None, 64)}
    x = np.random.default_rng(3).standard_normal((16, 8, 1, 64)).astype(np.float32) * 2
    got = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(proto)).run({"window": x})
    want = _fused(proto).run(None, {"window": x})
    for out, w in zip(proto.graph.output, want, strict=True):
        assert np.array_equal(got[out.name], w), out.name


def test_no_crop_when_the_width_is_not_static(corpus: dict[str, Built]) -> None:
    """An end counted from the end of a width only known at run time: that conv is not cropped."""
    from qprobe.backends.engine.crop import causal_crops
    from qprobe.backends.engine.graph import plan_units, read_graph

    proto = onnx.load(corpus["tcn_chomp"].int8)
    view = read_graph(ir.from_proto(proto))
    assert causal_crops(view, plan_units(view), lambda: {})[1] == {"block1_conv": (24,)}


def test_the_float_profile_ignores_the_crop_and_stays_right(corpus: dict[str, Built]) -> None:
    built = corpus["tcn_chomp"]
    proto = onnx.load(built.int8)
    session = EngineBackend(get_profile("onnxruntime").with_overrides({"conv.compute": "float"})).open(
        ir.from_proto(proto))
    feeds = _wide(built.samples(), 8)
    got = session.run(feeds)
    assert got[proto.graph.output[0].name].shape == (8, 2)


def test_no_crop_when_the_conv_output_is_visible(corpus: dict[str, Built]) -> None:
    proto = onnx.load(corpus["tcn_chomp"].int8)
    codes = next(n.output[0] for n in proto.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0].startswith("block0_conv"))
    proto.graph.output.append(onnx.helper.make_tensor_value_info(codes, onnx.TensorProto.INT8, None))
    from qprobe.backends.engine.crop import causal_crops
    from qprobe.backends.engine.fold import static_dims
    from qprobe.backends.engine.graph import plan_units, read_graph

    view = read_graph(ir.from_proto(proto))
    _view, crops = causal_crops(view, plan_units(view), lambda: static_dims(ir.from_proto(proto)))
    assert "block0_conv" not in crops and "block1_conv" in crops
    feeds = _wide(corpus["tcn_chomp"].samples(), 8)
    got = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(proto)).run(feeds)
    want = _fused(proto).run(None, feeds)
    assert got[codes].shape == want[-1].shape and np.array_equal(got[codes], want[-1])
