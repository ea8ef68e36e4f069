"""The measures of one verification stage: a candidate's final outputs against the reference's
outputs of the *original* model, and whether the culprit's output still fails.

Final outputs are compared as real values (each side dequantized with its own model's
parameters, so a requantized candidate compares fairly); LSBs are the original output's. A
stage passes when every final output is within the tolerance policy and the culprit's
output (the candidate run on the stage's backend against the candidate on the reference)
does not fail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qprobe.compare.policy import FAIL, TolerancePolicy
from qprobe.fix.run import real
from qprobe.metrics import LsbAccumulator, st_metrics
from qprobe.model.quant import QuantIndex
from qprobe.tensors import QuantParams

REFERENCE, EMULATION, TARGET = "reference", "emulation", "target"


@dataclass(frozen=True)
class StageResult:
    stage: str  # reference | emulation | target
    backend: str
    passed: bool
    reason: str
    final_cos: float
    final_rmse: float
    rmse_lsb: float | None  # rmse in LSB of the original output (None: float outputs)
    max_abs_lsb: float | None
    mean_delta_lsb: float | None
    max_rel: float  # max |delta| / max |reference|
    exact: bool  # identical to the reference's outputs of the original model
    culprit: str | None = None  # verdict of the culprit's output on this backend (None: not measured)
    culprit_reason: str = ""
    truth_rmse: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StageResult:
        kw: dict[str, Any] = {k: (math.nan if v is None and k in _FLOATS else v) for k, v in d.items()}
        return cls(**kw)


_FLOATS = {"final_cos", "final_rmse", "max_rel"}


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass(frozen=True)
class Baseline:
    """The reference's outputs of the original model, as every stage is measured against them."""

    outputs: dict[str, np.ndarray]  # real values per final output
    quant: dict[str, QuantParams | None]  # the original outputs' quantization
    truth: dict[str, np.ndarray] | None = None


def culprit_verdict(ref_codes: np.ndarray | None, got: np.ndarray | None, q: QuantParams | None,
                    policy: TolerancePolicy, name: str) -> tuple[str | None, str]:
    if ref_codes is None or got is None or q is None:
        return None, "culprit output not measured"
    acc = LsbAccumulator(q)
    acc.add(ref_codes, got)
    real_r, real_g = q.dequantize_f32(ref_codes), q.dequantize_f32(got)
    return policy.judge(name, st_metrics(real_r, real_g), acc.result())


def measure(stage: str, backend: str, base: Baseline, outputs: Mapping[str, np.ndarray], index: QuantIndex,
            policy: TolerancePolicy, culprit: tuple[str | None, str] = (None, "")) -> StageResult:
    cos, rmse, rel, problems = [], [], [], []
    lsb_max, lsb_mean, lsb_rmse = [], [], []
    exact = True
    for name, ref in base.outputs.items():
        got = real(outputs, index, name).reshape(ref.shape)
        st = st_metrics(ref, got)
        q = base.quant.get(name)
        acc = None
        if q is not None:
            acc = LsbAccumulator(q)
            acc.add(ref, got)
            r = acc.result()
            lsb_max.append(r.max_abs_lsb)
            lsb_mean.append(r.mean_delta_lsb)
            lsb_rmse.append(st.rmse / q.scale[0])
        verdict, why = policy.judge(name, st, acc.result() if acc else None)
        if verdict == FAIL:
            problems.append(f"{name}: {why}")
        exact = exact and bool(np.array_equal(ref, got))
        cos.append(st.cos)
        rmse.append(st.rmse)
        rel.append(float(np.max(np.abs(ref - got)) / max(float(np.max(np.abs(ref))), 1e-30)) if ref.size else 0.0)
    if culprit[0] == FAIL:
        problems.append(f"the culprit's output still fails ({culprit[1]})")
    return StageResult(
        stage, backend, not problems, "; ".join(problems) or "every final output within tolerance",
        min(cos), max(rmse), max(lsb_rmse) if lsb_rmse else None, max(lsb_max) if lsb_max else None,
        max(lsb_mean, key=abs) if lsb_mean else None, max(rel), exact, culprit[0], culprit[1],
        truth_rmse(base, outputs, index),
    )


def truth_rmse(base: Baseline, outputs: Mapping[str, np.ndarray], index: QuantIndex) -> float | None:
    """RMSE against the ground truth, averaged over the outputs the truth has."""
    if not base.truth:
        return None
    values = [float(np.sqrt(np.mean((real(outputs, index, k).reshape(t.shape) - t) ** 2)))
              for k, t in base.truth.items() if k in outputs]
    return float(np.mean(values)) if values else None
