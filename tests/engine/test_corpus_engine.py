"""``engine:onnxruntime`` against onnxruntime on every corpus model, every tensor (``--probe all``).

Oracles: ``ort-fused`` (onnxruntime's optimized, integer-kernel run) and ``ort`` (its
unoptimized float DequantizeLinear -> op -> QuantizeLinear run). Through
``qprobe.compare.compare_backends`` with ``on_traces``, so that the raw arrays of every
probed tensor are compared here, independently of the comparison's own verdicts:

* integer tensors: identical codes when the model's reference arithmetic is integer
  (``Built.integer_reference``); otherwise at most one code apart on at most 1 % of them;
* float tensors: within ``FLOAT_TOL`` of the tensor's largest magnitude (a few float32 ulp).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from qprobe.backends import create_backend
from qprobe.compare import Comparison, compare_backends
from qprobe.model.inputs import InputSet
from qprobe.model.loader import load_model
from qprobe.tensors import Trace

from models.corpus import CORPUS, Built

FLOAT_TOL = 4 * 2.0**-23  # relative to the tensor's largest magnitude


def _traces(built: Built, ref: str, target: str, options: Mapping[str, str] | None = None,
            samples: dict[str, np.ndarray] | None = None, batch_size: int = 64
            ) -> tuple[list[tuple[Trace, Trace]], Comparison]:
    pairs: list[tuple[Trace, Trace]] = []
    comparison = compare_backends(load_model(built.int8), create_backend(ref), create_backend(target, options),
                                  InputSet(samples or built.samples(), "corpus"), probe="all", batch_size=batch_size,
                                  on_traces=lambda r, t: pairs.append((r, t)))
    return pairs, comparison


def _wider(samples: dict[str, np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` new samples: floats uniform over 1.2x the calibration range (saturating some codes),
    integer inputs uniform over their type."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in samples.items():
        shape = (n, *v.shape[1:])
        if v.dtype.kind == "f":
            out[k] = rng.uniform(1.2 * float(v.min()), 1.2 * float(v.max()), shape).astype(v.dtype)
        else:
            info = np.iinfo(v.dtype)
            out[k] = rng.integers(info.min, info.max + 1, shape).astype(v.dtype)
    return out


def _differences(pairs: list[tuple[Trace, Trace]]) -> tuple[dict[str, tuple[float, int]], dict[str, float]]:
    """Per integer tensor (share of differing codes, max |delta|); per float tensor the error over its max."""
    codes: dict[str, tuple[float, int]] = {}
    floats: dict[str, float] = {}
    for ref, tgt in pairs:
        for name, rec in ref.records.items():
            a, b = rec.data, tgt.records[name].data
            assert a.shape == b.shape and a.dtype == b.dtype, name
            if a.dtype.kind in "iub":
                delta = np.abs(a.astype(np.int64) - b.astype(np.int64))
                if delta.any():
                    codes[name] = (float(np.mean(delta > 0)), int(delta.max()))
            elif a.size:
                top = float(np.max(np.abs(a))) or 1.0
                err = float(np.max(np.abs(a.astype(np.float64) - b))) / top
                if err:
                    floats[name] = err
    return codes, floats


def _check(built: Built, codes: dict[str, tuple[float, int]], floats: dict[str, float]) -> None:
    if built.integer_reference:
        assert codes == {}, f"differing codes (share, max |delta|): {codes}"
    else:
        assert all(share <= 0.01 and top <= 1 for share, top in codes.values()), codes
    assert all(err <= FLOAT_TOL for err in floats.values()), floats


@pytest.mark.parametrize("name", list(CORPUS))
def test_engine_matches_ort_fused_on_every_tensor(name: str, corpus: dict[str, Built]) -> None:
    built = corpus[name]
    pairs, comparison = _traces(built, "ort-fused", "engine:onnxruntime")
    assert len(comparison.rows) > len(built.samples()) + 2  # intermediate tensors were probed
    _check(built, *_differences(pairs))
    assert not any(e.changed_outputs for e in comparison.probe_effects if e.backend.startswith("engine"))


@pytest.mark.parametrize("name", list(CORPUS))
def test_engine_matches_ort_fused_beyond_the_calibration_range(name: str, corpus: dict[str, Built]) -> None:
    built = corpus[name]
    pairs, _ = _traces(built, "ort-fused", "engine:onnxruntime", samples=_wider(built.samples(), 160, 11))
    _check(built, *_differences(pairs))


@pytest.mark.parametrize("name", list(CORPUS))
def test_engine_matches_ort_fused_one_sample_at_a_time(name: str, corpus: dict[str, Built]) -> None:
    """Batches of one take the engine's single-sample plans (channels-first convs, depthwise
    over stride phases); every tensor must still match."""
    built = corpus[name]
    few = {k: v[:3] for k, v in built.samples().items()}
    pairs, _ = _traces(built, "ort-fused", "engine:onnxruntime", samples=few, batch_size=1)
    assert len(pairs) == 3
    _check(built, *_differences(pairs))


UNFUSED = {"compute": "float", "float_weights": "float"}


@pytest.mark.parametrize("name", [n for n in CORPUS if n != "qoperator_constant"])
def test_engine_in_float_matches_unfused_ort(name: str, corpus: dict[str, Built]) -> None:
    """``compute=float, float_weights=float`` is onnxruntime's unoptimized DQ -> op -> Q."""
    built = corpus[name]
    pairs, _ = _traces(built, "ort", "engine:onnxruntime", UNFUSED)
    codes, floats = _differences(pairs)
    assert all(share <= 0.01 and top <= 1 for share, top in codes.values()), codes
    assert all(err <= FLOAT_TOL for err in floats.values()), floats


def test_qoperator_model_is_integer_in_both_onnxruntime_modes(corpus: dict[str, Built]) -> None:
    built = corpus["qoperator_constant"]
    pairs, _ = _traces(built, "ort", "engine:onnxruntime")
    _check(built, *_differences(pairs))


@pytest.mark.parametrize("name", ["oe_uint8_io", "oe_float_io"])
def test_float_weight_models_differ_between_ort_modes_and_the_engine_follows_each(
        name: str, corpus: dict[str, Built]) -> None:
    """The OE pattern: ``ort-fused`` quantizes the float weights, ``ort`` does not."""
    built = corpus[name]
    between, _ = _traces(built, "ort", "ort-fused")
    assert len(_differences(between)[0]) >= 3  # onnxruntime's two modes compute different models
    fused, _ = _traces(built, "ort-fused", "engine:onnxruntime")
    _check(built, *_differences(fused))
    unfused, _ = _traces(built, "ort", "engine:onnxruntime", {"float_weights": "float"})
    codes, _floats = _differences(unfused)
    assert all(share <= 0.01 and top <= 1 for share, top in codes.values()), codes
