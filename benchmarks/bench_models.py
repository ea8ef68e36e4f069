"""The benchmark models and their samples, shared by the benchmarks.

``model_path(name)``: ``tcn`` (the bundled example), ``mobilenet`` (``tests/models/mobilenet.py``)
and ``resnet18`` (``benchmarks/resnet18.py``), the last two cached under ``benchmarks/.cache``.
``batches(name, n, batch)`` yields the same ``n`` samples in batches of any size: each block
of 64 samples is drawn from its own seeded generator (``default_rng([7, block])``), so every
tool of a benchmark sees the same samples and none holds them all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
BLOCK = 64
MODELS = ("tcn", "mobilenet", "resnet18")


def model_path(name: str) -> Path:
    if name == "tcn":
        from qprobe.examples.tcn import packaged_example_dir

        return packaged_example_dir() / "tcn_int8.onnx"
    if name == "mobilenet":
        dst = CACHE / "mobilenet_int8_seed0.onnx"
        if not dst.exists():
            sys.path.insert(0, str(HERE.parent / "tests"))  # the test-model builders
            from models.mobilenet import build_mobilenet_like

            CACHE.mkdir(exist_ok=True)
            onnx.save(build_mobilenet_like(0), dst)
        return dst
    if name == "resnet18":
        sys.path.insert(0, str(HERE))
        from resnet18 import resnet18_path

        return resnet18_path()
    raise SystemExit(f"unknown benchmark model {name!r}; known: {', '.join(MODELS)}")


def input_spec(path: Path) -> tuple[str, tuple[int, ...]]:
    vi = onnx.load(path, load_external_data=False).graph.input[0]
    return vi.name, tuple(d.dim_value for d in vi.type.tensor_type.shape.dim[1:])


def block(path: Path, k: int, n: int) -> np.ndarray:
    """Samples ``k*BLOCK`` .. of the benchmark set of ``n`` samples."""
    _, shape = input_spec(path)
    count = min(BLOCK, n - k * BLOCK)
    return np.random.default_rng([7, k]).standard_normal((count, *shape)).astype(np.float32)


def batches(path: Path, n: int, batch: int) -> Iterator[dict[str, np.ndarray]]:
    """The ``n`` samples in feeds of ``batch`` samples (any batch size, same samples)."""
    name, _ = input_spec(path)
    pending: list[np.ndarray] = []
    have, k = 0, 0
    while k * BLOCK < n or have:
        while have < batch and k * BLOCK < n:
            pending.append(block(path, k, n))
            have += len(pending[-1])
            k += 1
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        yield {name: joined[:batch]}
        rest = joined[batch:]
        pending, have = ([rest], len(rest)) if len(rest) else ([], 0)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
