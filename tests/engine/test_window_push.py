"""Window Slices pushed up to the Conv that starts their chain (backends/engine/window_push.py).

Oracles: onnxruntime (``ort-fused``, whose integer kernels the ``onnxruntime`` profile
reproduces bit for bit) on the unprobed models, where the push applies, and on models whose
intermediate tensors are graph outputs, where it must not; ``conv_window`` against the
definition of a padded 1-D correlation, computed directly in numpy.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run_ort

from qprobe.backends.engine import EngineBackend, get_profile
from qprobe.backends.engine.window_push import conv_window
from qprobe.examples.tcn import packaged_example_dir

from models.corpus import CORPUS, Built


def _correlate(x: np.ndarray, w: np.ndarray, stride: int, dilation: int, pb: int, pe: int) -> np.ndarray:
    xp = np.concatenate([np.zeros(pb, np.int64), x, np.zeros(pe, np.int64)])
    ext = (len(w) - 1) * dilation + 1
    n = (len(xp) - ext) // stride + 1
    return np.array([sum(int(w[k]) * int(xp[o * stride + k * dilation]) for k in range(len(w))) for o in range(n)])


def test_conv_window_gives_the_kept_outputs() -> None:
    rng = np.random.default_rng(0)
    for width, kernel, stride, dilation, pb, pe in itertools.product((5, 9), (1, 3), (1, 2), (1, 3), (0, 2, 4), (0, 3)):
        x = rng.integers(-9, 10, width)
        w = rng.integers(-9, 10, kernel)
        full = _correlate(x, w, stride, dilation, pb, pe)
        for s in range(len(full)):
            for e in range(s + 1, len(full) + 1):
                lo, hi, b, a = conv_window(s, e, width, stride, dilation, kernel, pb)
                if hi <= lo:  # the window reads padding only: not pushed (window_push._conv)
                    assert s * stride >= pb + width or (e - 1) * stride + (kernel - 1) * dilation < pb
                    continue
                assert 0 <= lo < hi <= width and b >= 0 and a >= 0
                assert np.array_equal(_correlate(x[lo:hi], w, stride, dilation, b, a), full[s:e])


def _q(name: str, x: str, scale: float, zp: int, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> str:
    inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
              numpy_helper.from_array(np.array(zp, np.int8), f"{name}_z")]
    nodes += [helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
              helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_d"])]
    return f"{name}_d"


def _model(residual: bool, window: tuple[int, int], stride: int, dilation: int, pads: tuple[int, int],
           visible: bool = False, width: int = 24) -> onnx.ModelProto:
    """x (N, 4, 1, W) -> Q/DQ -> Conv(k=3) -> Q/DQ [-> Add(x, .) -> Q/DQ] -> Slice(window, axis 3) -> Q/DQ."""
    rng = np.random.default_rng(stride * 10 + dilation)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x = _q("x", "x", 0.05, 3, nodes, inits)
    w = rng.integers(-127, 128, (4, 4, 1, 3)).astype(np.int8)
    inits += [numpy_helper.from_array(w, "w_q"), numpy_helper.from_array(np.array(0.02, np.float32), "w_s"),
              numpy_helper.from_array(np.array(0, np.int8), "w_z"),
              numpy_helper.from_array(rng.integers(-500, 500, 4).astype(np.int32), "b_q"),
              numpy_helper.from_array(np.array(0.05 * 0.02, np.float32), "b_s"),
              numpy_helper.from_array(np.array(0, np.int32), "b_z")]
    nodes += [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_d"]),
              helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b_d"]),
              helper.make_node("Conv", [x, "w_d", "b_d"], ["y"], name="conv", kernel_shape=[1, 3],
                               strides=[1, stride], dilations=[1, dilation], pads=[0, pads[0], 0, pads[1]])]
    t = _q("y", "y", 0.1, -5, nodes, inits)
    if residual:
        nodes.append(helper.make_node("Add", [x, t], ["r"], name="add"))
        t = _q("r", "r", 0.12, 2, nodes, inits)
    inits += [numpy_helper.from_array(np.array([v], np.int64), n)
              for n, v in (("starts", window[0]), ("ends", window[1]), ("axes", 3))]
    nodes.append(helper.make_node("Slice", [t, "starts", "ends", "axes"], ["cut"], name="cut"))
    out = _q("out", "cut", 0.12, 2, nodes, inits)
    outputs = [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)]
    if visible:
        outputs.append(helper.make_tensor_value_info("y_q", TensorProto.INT8, None))
    graph = helper.make_graph(nodes, "window", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["n", 4, 1, width])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _shapes(session: object, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Each step's first output shape, by node, running the compiled program step by step."""
    program = session.program  # type: ignore[attr-defined]
    env = {k: np.asarray(v) for k, v in feeds.items()}
    shapes = {}
    for step in program.steps:
        step.run(env)
        shapes[step.node] = env[step.outputs[0]].shape
    return shapes


CASES = [  # (residual, window, stride, dilation, pads): windows that are not crop.py's start-0 case
    (True, (23, 24), 1, 1, (1, 1)),
    (True, (-1, 24), 1, 4, (4, 4)),
    (True, (5, 9), 1, 2, (2, 2)),
    (True, (0, 7), 1, 8, (16, 0)),  # start 0 through the Add
    (False, (3, 6), 2, 1, (1, 1)),
    (False, (-4, -1), 1, 3, (6, 0)),
    (False, (2, 11), 2, 2, (0, 3)),
]


@pytest.mark.parametrize(("residual", "window", "stride", "dilation", "pads"), CASES)
def test_pushed_windows_compute_only_the_kept_positions_and_stay_exact(
        residual: bool, window: tuple[int, int], stride: int, dilation: int, pads: tuple[int, int]) -> None:
    model = _model(residual, window, stride, dilation, pads)
    session = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(model))
    feeds = {"x": np.random.default_rng(5).uniform(-6, 6, (7, 4, 1, 24)).astype(np.float32)}
    want = run_ort(model, feeds, fused=True)
    got = session.run(feeds)
    out = model.graph.output[0].name
    assert np.array_equal(got[out], want[out])
    kept = want[out].shape[3]
    assert _shapes(session, feeds)["conv"][3] == kept  # the Conv computed the kept positions only


def test_a_visible_tensor_keeps_the_whole_width() -> None:
    model = _model(True, (23, 24), 1, 1, (1, 1), visible=True)
    session = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(model))
    feeds = {"x": np.random.default_rng(6).uniform(-6, 6, (3, 4, 1, 24)).astype(np.float32)}
    want, got = run_ort(model, feeds, fused=True), session.run(feeds)
    for o in model.graph.output:
        assert np.array_equal(got[o.name], want[o.name]), o.name
    assert got["y_q"].shape == (3, 4, 1, 24)


@pytest.mark.parametrize("n", [1, 64])
def test_the_example_tcn_computes_its_last_block_at_one_step(n: int) -> None:
    proto = onnx.load(packaged_example_dir() / "tcn_int8.onnx")
    session = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(proto))
    feeds = {"window": np.random.default_rng(n).standard_normal((n, 8, 1, 64)).astype(np.float32) * 2}
    want, got = run_ort(proto, feeds, fused=True), session.run(feeds)
    for o in proto.graph.output:
        assert np.array_equal(got[o.name], want[o.name]), o.name
    shapes = _shapes(session, feeds)
    assert shapes["block5_conv"] == (n, 32, 1, 1) and shapes["block5_add"] == (n, 32, 1, 1)
    assert shapes["block4_conv"] == (n, 32, 1, 64)  # crop.py's causal crop, as before


@pytest.mark.parametrize("name", ["tcn_dilated", "tcn_chomp"])
@pytest.mark.parametrize("n", [1, 64])
def test_the_corpus_tcns_are_pushed_and_exact(corpus: dict[str, Built], name: str, n: int) -> None:
    built = corpus[name]
    proto = onnx.load(built.int8)
    session = EngineBackend(get_profile("onnxruntime")).open(ir.from_proto(proto))
    assert any("__window" in o for s in session.program.steps for o in s.outputs)  # a window was pushed
    rng = np.random.default_rng(n)
    feeds = {k: rng.uniform(1.2 * float(v.min()), 1.2 * float(v.max()), (n, *v.shape[1:])).astype(v.dtype)
             for k, v in built.samples().items()}
    want, got = run_ort(proto, feeds, fused=True), session.run(feeds)
    for o in proto.graph.output:
        assert np.array_equal(got[o.name], want[o.name]), o.name


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_corpus_model_runs_the_same_with_and_without_the_push(corpus: dict[str, Built], name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every export pattern of the corpus (PyTorch flatten, ReduceMean, QOperator, float-weight QDQ,
    attention, 1-D): unprobed, the pass changes no output (the engine without it is checked
    against onnxruntime on the same models by test_corpus_engine.py)."""
    import qprobe.backends.engine.interpreter as interpreter

    built = corpus[name]
    samples = {k: v[:1] for k, v in built.samples().items()}  # one sample: some have a fixed batch of 1
    pushed = EngineBackend(get_profile("onnxruntime")).open(ir.load(built.int8)).run(samples)
    monkeypatch.setattr(interpreter, "pushed_windows", lambda view, dims: view)
    plain = EngineBackend(get_profile("onnxruntime")).open(ir.load(built.int8)).run(samples)
    assert pushed.keys() == plain.keys()
    for k in plain:
        assert np.array_equal(pushed[k], plain[k], equal_nan=True), k
