"""Verification of one candidate, stage by stage, stopping at the first stage it fails.

(a) the reference backend on the candidate against the reference on the original model:
does the rewrite keep the model's function ("exact in float" when identical); (b) the fitted
emulation on the candidate against the reference on the original: the final-output error the
target is predicted to make, and whether the culprit's output still fails (the candidate on
the emulation against the candidate on the reference); (c) the same on the real target, for
the few best candidates (``Verifier.on_target``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.compare.policy import TolerancePolicy
from qprobe.fix.measure import EMULATION, REFERENCE, TARGET, Baseline, StageResult, culprit_verdict, measure
from qprobe.fix.result import (
    FAILS_EMULATION,
    FAILS_TARGET,
    NOT_APPLICABLE,
    PREDICTED,
    REJECTED,
    VERIFIED,
    Candidate,
)
from qprobe.fix.run import run_model
from qprobe.model.inputs import InputSet
from qprobe.model.quant import build_quant_index
from qprobe.rewrite import RewritePass, RewriteResult


@dataclass(frozen=True)
class Verifier:
    ref: Backend
    emulation: Backend
    target: Backend
    inputs: InputSet
    base: Baseline
    culprit_codes: str  # the culprit's output codes (kept by every pass)
    policy: TolerancePolicy
    batch_size: int = 64

    def reference(self, model: ir.Model) -> tuple[StageResult, dict[str, np.ndarray]]:
        out = run_model(self.ref, model, self.inputs, [self.culprit_codes], self.batch_size)
        stage = measure(REFERENCE, self.ref.spec, self.base, out, build_quant_index(model), self.policy)
        return stage, out

    def on(self, stage: str, backend: Backend, model: ir.Model, ref_codes: np.ndarray | None,
           keep: dict[str, np.ndarray] | None = None) -> StageResult:
        probe = [self.culprit_codes] if not backend.capabilities().probe_sensitive else []
        out = run_model(backend, model, self.inputs, probe, self.batch_size)
        if keep is not None:
            keep.update(out)
        index = build_quant_index(model)
        verdict = culprit_verdict(ref_codes, out.get(self.culprit_codes), index.quant_of(self.culprit_codes),
                                  self.policy, self.culprit_codes)
        if not probe:
            verdict = (None, "not probed: exposing tensors changes what this target computes")
        return measure(stage, backend.spec, self.base, out, index, self.policy, verdict)

    def on_target(self, cand: Candidate, ref_codes: np.ndarray | None) -> Candidate:
        assert cand.model is not None
        c = self.on(TARGET, self.target, cand.model, ref_codes)
        verdict = VERIFIED if c.passed else FAILS_TARGET
        reason = f"on the target: {c.reason}" + _culprit_text(c)
        return replace(cand, stages=(*cand.stages, c), verdict=verdict, verdict_reason=reason)


def _culprit_text(s: StageResult) -> str:
    """The culprit's verdict when the stage passed (a failing one is already in the stage's reason)."""
    return "" if s.culprit is None or not s.passed else f"; the culprit's output: {s.culprit} ({s.culprit_reason})"


def evaluate(v: Verifier, p: RewritePass, result: RewriteResult) -> tuple[Candidate, np.ndarray | None]:
    """Stages (a) and (b) of one candidate, and the culprit's codes on the reference (for stage c)."""
    cand = Candidate(p.name, p.summary, p.motivating, p.int8, result)
    if not result.applied:
        return replace(cand, verdict=NOT_APPLICABLE, verdict_reason=result.reason), None
    a, ref_out = v.reference(result.model)
    ref_codes = ref_out.get(v.culprit_codes)
    exact = "exact in float" if a.exact else f"max |delta| {_lsb(a)} on the reference"
    if not a.passed:
        return replace(cand, stages=(a,), verdict=REJECTED,
                       verdict_reason=f"on the reference ({exact}): {a.reason}"), None
    emu_out: dict[str, np.ndarray] = {}
    b = v.on(EMULATION, v.emulation, result.model, ref_codes, emu_out)
    cand = replace(cand, stages=(a, b), fingerprint=fingerprint(ref_out, emu_out))
    if not b.passed:
        return replace(cand, verdict=FAILS_EMULATION, verdict_reason=f"on the emulation: {b.reason}"), ref_codes
    return replace(cand, verdict=PREDICTED, verdict_reason=f"{exact}; on the emulation: final cos {b.final_cos:.5f}, "
                                                           f"{b.reason}{_culprit_text(b)}"), ref_codes


def fingerprint(*outputs: dict[str, np.ndarray]) -> str:
    """A digest of every array of ``outputs``: two candidates with equal digests computed the same numbers."""
    h = hashlib.sha256()
    for out in outputs:
        for k in sorted(out):
            a = np.ascontiguousarray(out[k])
            h.update(f"{k}\0{a.dtype.str}\0{a.shape}\0".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _lsb(s: StageResult) -> str:
    rel = f"{100 * s.max_rel:.2f}%"
    return f"{s.max_abs_lsb:.0f} LSB ({rel})" if s.max_abs_lsb is not None else rel
