"""Run one cut of a model on a reference (and a target), fed with the reference's values.

``run_cut`` is what ``qprobe extract --bundle`` needs: the cut model (``model.extract``), the
reference's values of the cut inputs in the whole model, the reference's outputs of the cut
and, when a target is given, the target's outputs and the comparison rows. It lives here,
beside the comparison it runs, because it opens backends (``model/`` cannot). ``CutRun`` is
what repro bundles are written from.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.compare.compare import compare_traces
from qprobe.compare.policy import TolerancePolicy
from qprobe.compare.result import TensorComparison
from qprobe.compare.traces import Capture, gather, run_traces, tensor_values
from qprobe.model.extract import extract_subgraph
from qprobe.model.inputs import InputSet
from qprobe.model.quant import build_quant_index


@dataclass(frozen=True)
class CutRun:
    model: ir.Model
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    observed: dict[str, np.ndarray] | None
    rows: tuple[TensorComparison, ...] = ()
    accumulated_inputs: tuple[TensorComparison, ...] = ()
    accumulated_outputs: tuple[TensorComparison, ...] = ()


def run_cut(
    model: ir.Model, inputs: Sequence[str], outputs: Sequence[str], ref: Backend, target: Backend | None,
    samples: InputSet, *, policy: TolerancePolicy | None = None, batch_size: int = 64,
) -> CutRun:
    """The cut ``inputs -> outputs`` of ``model`` run on the reference's values of its inputs."""
    cut = extract_subgraph(model, inputs, outputs)
    feeds = tensor_values(ref, model, inputs, samples, batch_size)
    feed_set = InputSet(feeds, "the reference's values at the cut inputs")
    names = [str(v.name) for v in cut.graph.outputs]
    if target is None:
        return CutRun(cut, feeds, gather(run_traces(ref, cut, None, feed_set, batch_size), names), None)
    cap = Capture(names)
    index = build_quant_index(cut)
    streams = (run_traces(ref, cut, None, feed_set, batch_size, index=index),
               run_traces(target.scoped([str(n.name) for n in cut.graph]), cut, None, feed_set, batch_size,
                          index=index))
    with closing(streams[0]), closing(streams[1]):
        cmp = compare_traces(*streams, policy, index=index, on_batch=cap)
    return CutRun(cut, feeds, cap.ref, cap.target, cmp.rows)
