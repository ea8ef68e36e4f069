"""``compare --cluster``: samples sharded over the workers give the serial run's Comparison bit for bit.

The oracle is the serial ``compare_backends`` (itself checked against onnxruntime and numpy formulas
elsewhere): every row's metrics, LSB histograms, probe effects and verdicts must be equal as JSON,
provenance (timings, command line, cluster, thread pools) aside. The shards are checked to be more than one, so a
cluster that silently ran everything as one shard would not pass for sharding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qprobe.backends import create_backend
from qprobe.compare import Comparison, InputRequest, compare_backends, resolve_inputs
from qprobe.model.loader import load_model

pytestmark = pytest.mark.cluster


def _without_provenance(c: Comparison) -> dict[str, Any]:
    """Everything but how the runs were made: provenance (times, command line, cluster) and the
    sessions' settings (a local worker's onnxruntime pool is its share of the cores)."""
    d = c.to_json()
    d.pop("provenance")
    d.pop("session_info")
    return d


def _both(cluster: Any, model_path: Path, ref: str, target: str, request: InputRequest, batch: int) -> None:
    from qprobe.execute import compare_on_cluster

    m = load_model(model_path)
    backends = (create_backend(ref, {}), create_backend(target, {}))
    inputs = resolve_inputs(m, request, backends)
    serial = compare_backends(m, *backends, inputs, batch_size=batch)
    sharded = compare_on_cluster(cluster, m, create_backend(ref, {}), create_backend(target, {}), request,
                                 batch_size=batch)
    assert sharded.provenance["execution"]["shards"] > 1
    assert sharded.num_samples == serial.num_samples == inputs.num_samples
    assert _without_provenance(sharded) == _without_provenance(serial)


def test_tcn_sharded_equals_serial(cluster: Any) -> None:
    from qprobe.examples.tcn import packaged_example_dir

    # 45 samples in batches of 8: 6 batches, the last one short, in shards of whole batches
    _both(cluster, packaged_example_dir() / "tcn_int8.onnx", "ort", "engine:arith16-wrap",
          InputRequest(random=45, seed=5), 8)


def test_corpus_model_sharded_equals_serial(cluster: Any, tmp_path: Path) -> None:
    from models.corpus import CORPUS

    built = CORPUS["mobilenetv2_block"].build(tmp_path)
    # the inputs travel as a path every worker reads, not as tensors
    _both(cluster, built.int8, "ort", "ort-fused", InputRequest(path=built.calibration), 7)


def test_shards_are_whole_batches_in_sample_order() -> None:
    from qprobe.execute import shard_ranges

    assert shard_ranges(250, 32, 6) == [(0, 64), (64, 128), (128, 192), (192, 250)]
    assert shard_ranges(10, 64, 4) == [(0, 10)]
    ranges = shard_ranges(1000, 7, 5)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000
    assert all(a[1] == b[0] and a[0] % 7 == 0 for a, b in zip(ranges, ranges[1:], strict=False))


def test_a_window_of_lazy_random_inputs_is_the_slice_of_all_of_them() -> None:
    from qprobe.examples.tcn import packaged_example_dir
    from qprobe.model.inputs import random_inputs

    m = load_model(packaged_example_dir() / "tcn_int8.onnx")
    lazy = random_inputs(m, 2500, seed=3)
    assert lazy.is_lazy
    every = random_inputs(m, 2500, seed=3).arrays
    for lo, hi in ((0, 7), (1000, 2100), (2047, 2500)):  # block size 1024: windows across block ends
        w = lazy.window(lo, hi)
        assert w.is_lazy and w.num_samples == hi - lo
        for name, a in every.items():
            assert (np.concatenate([b[name] for _, b in w.batches(300)]) == a[lo:hi]).all()
