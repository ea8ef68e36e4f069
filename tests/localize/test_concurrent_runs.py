"""Independent target runs go at once on a target that declares concurrency > 1 (several boards):
the same culprit and the same number of target runs as one at a time, with runs overlapping."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import onnx_ir as ir
import pytest
from defect_target import DefectTarget

from qprobe.backends import Capabilities, create_backend
from qprobe.backends.base import Session
from qprobe.localize import localize
from qprobe.model.inputs import random_inputs
from qprobe.model.loader import load_model

from models.residual import qdq_residual_model


class Boards(DefectTarget):
    """A defective target with three 'boards': each cut run waits (up to 60 s, once) for a second run
    to start; the first run (the model as given, alone by nature) does not wait."""

    def __init__(self) -> None:
        super().__init__(["conv2"], 0.8, Capabilities(concurrency=3, cost_per_run_s=1.0, batch_size=None))
        self.lock, self.busy, self.most = threading.Lock(), 0, 0
        self.two = threading.Event()
        self.opens = 0

    def open(self, model: ir.Model) -> Session:
        inner, boards = super().open(model), self
        with self.lock:
            self.opens += 1
            first = self.opens == 1

        class _S:
            info: dict[str, str] = {}

            def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
                with boards.lock:
                    boards.busy += 1
                    boards.most = max(boards.most, boards.busy)
                    if boards.busy >= 2:
                        boards.two.set()
                if not first:
                    boards.two.wait(60)  # a lone run waits for company, then goes on alone
                try:
                    return inner.run(feeds, first_sample=first_sample)
                finally:
                    with boards.lock:
                        boards.busy -= 1

            def close(self) -> None:
                inner.close()

        return _S()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    return load_model(qdq_residual_model(tmp_path_factory.mktemp("boards")))


def test_runs_overlap_and_the_result_is_unchanged(model: ir.Model) -> None:
    x = random_inputs(model, 6, seed=5)
    one = localize(model, create_backend("ort"), DefectTarget(["conv2"], 0.8, Capabilities(max_outputs_per_run=2)),
                   x, strategy="isolate").divergence
    boards = Boards()
    caps = boards.capabilities()
    boards._caps = Capabilities(concurrency=caps.concurrency, max_outputs_per_run=2)
    many = localize(model, create_backend("ort"), boards, x, strategy="isolate").divergence
    assert one.culprit is not None and many.culprit is not None and many.culprit.op == one.culprit.op == "conv2"
    assert many.target_runs == one.target_runs
    assert boards.most >= 2  # two boards ran at the same time
