"""The fitted profile: a hypothesis for the culprit's whole class, on the base that best explains the rest.

``Screen.check`` holds a profile to the target's probed trace (kept rows, so the target
does not run again) on every tensor with the verification tolerance (``cos >= 0.999``,
mean delta within 0.5 LSB), computed directly on the codes: fast enough to screen many
profiles. ``check``/``verify`` make the same comparison through ``compare_backends``
(the final word on the fitted profile). ``choose_base`` tries the best hypothesis on every built-in base and
the float fallback and keeps the base with the fewest failing tensors, then the most exact
ones. ``rank_on_model`` checks the top hypotheses on that base, so that one that explains
the culprit but breaks another op ranks lower. ``write_profile`` writes the TOML that
``engine:<file>.toml`` loads and verifies it through that path.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.backends.engine import EngineBackend, Profile
from qprobe.backends.registry import create_backend
from qprobe.compare import TensorComparison, Tolerance, TolerancePolicy, compare_backends
from qprobe.explain.compose import FLOAT_BASE, base_profile, bases, compose
from qprobe.explain.runs import kept_inputs, run_model, spread
from qprobe.explain.space import Candidate
from qprobe.explain.tomlwrite import dumps
from qprobe.model.inputs import InputSet
from qprobe.model.quant import QuantIndex

VERIFY = TolerancePolicy(Tolerance(min_cos=0.999))
SCREEN_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class TensorFit:
    tensor: str
    producer: str
    verdict: str
    reason: str
    exact_share: float | None
    cos: float | None
    mean_delta_lsb: float | None

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    @classmethod
    def of(cls, r: TensorComparison) -> TensorFit:
        lsb = r.lsb
        cos = r.st.cos if r.st.cos == r.st.cos else None
        return cls(r.name, r.producer, r.verdict, r.reason, None if lsb is None else lsb.exact_share, cos,
                   None if lsb is None else lsb.mean_delta_lsb)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorFit:
        return cls(d["tensor"], d["producer"], d["verdict"], d["reason"], d["exact_share"], d["cos"],
                   d["mean_delta_lsb"])


@dataclass(frozen=True)
class ModelCheck:
    base: str
    candidate: Candidate
    rows: tuple[TensorFit, ...]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.tensor for r in self.rows if r.failed)

    @property
    def exact(self) -> int:
        return sum(1 for r in self.rows if r.verdict == "exact")

    def key(self) -> tuple[int, int, float]:
        miss = sum(1 - (r.exact_share if r.exact_share is not None else 1.0) for r in self.rows)
        return (len(self.failed), -self.exact, miss)


@dataclass(frozen=True)
class Screen:
    """The target's probed trace (kept rows) and what is needed to hold a profile to it quickly."""

    probed: ir.Model
    target: Mapping[str, np.ndarray]
    inputs: InputSet
    index: QuantIndex

    def row(self, name: str, ref: np.ndarray, got: np.ndarray) -> TensorFit:
        """One tensor, as ``compare`` with the verification tolerance would judge it (ref: the target)."""
        q = self.index.quant_of(name)
        codes = q is not None and ref.dtype.kind in "iu" and got.dtype.kind in "iu"
        producer = self.index.op_of_tensor.get(name) or self.index.producer.get(name, "(input)")
        same = ref == got
        exact = float(np.mean(same)) if same.size else 1.0
        if exact == 1.0:
            return TensorFit(name, producer, "exact", "identical", 1.0 if codes else None, 1.0, 0.0 if codes else None)
        r = q.dequantize_f32(ref) if codes and q is not None else ref
        g = q.dequantize_f32(got) if codes and q is not None else got
        r64, g64 = r.astype(np.float64).reshape(-1), g.astype(np.float64).reshape(-1)
        norm = math.sqrt(float(np.add.reduce(r64 * r64)) * float(np.add.reduce(g64 * g64)))
        cos = float(np.add.reduce(r64 * g64)) / norm if norm > 0 else 0.0
        mean = float(np.mean(ref.astype(np.int64) - got.astype(np.int64))) if codes else None
        tol = VERIFY.for_tensor(name)
        bad = cos < tol.min_cos or (mean is not None and abs(mean) > tol.max_abs_bias_lsb)
        return TensorFit(name, producer, "fail" if bad else "pass", f"cos {cos:.5f}", exact if codes else None,
                         cos, mean)

    def subset(self, limit: int = SCREEN_ELEMENTS) -> Screen:
        """The same screen on fewer (evenly spread) samples, for ranking many profiles quickly."""
        n = self.inputs.num_samples
        per_sample = sum(v[0].size for v in self.target.values() if v.shape[0]) or 1
        keep = spread(n, per_sample, limit)
        if keep.size == n:
            return self
        return Screen(self.probed, {k: v[keep] for k, v in self.target.items()}, kept_inputs(self.inputs, keep),
                      self.index)

    def check(self, profile: Profile) -> tuple[TensorFit, ...]:
        out = run_model(EngineBackend(profile), self.probed, self.inputs)
        return tuple(self.row(t, np.asarray(v), np.asarray(out[t])) for t, v in self.target.items() if t in out)


def check(model: ir.Model, replay: Backend, inputs: InputSet, engine: Backend) -> tuple[TensorFit, ...]:
    """``compare --ref <replayed target> --target <engine> --probe all`` with the verification tolerance."""
    cmp = compare_backends(model, replay, engine, inputs, probe="all", policy=VERIFY, check_probe_effect=False)
    return tuple(TensorFit.of(r) for r in cmp.rows)


def choose_base(screen: Screen, op_class: str, op_type: str, cand: Candidate) -> list[ModelCheck]:
    """The best hypothesis on every base, best first (ties: the base that needs the fewest knobs)."""
    screen = screen.subset()
    checks = [ModelCheck(b, cand, screen.check(compose(b, op_class, op_type, cand.numerics))) for b in bases()]
    return sorted(checks, key=lambda c: (*c.key(), len(profile_knobs(c.base, op_class, op_type, cand))))


def rank_on_model(screen: Screen, op_class: str, op_type: str, base: str,
                  cands: Sequence[Candidate]) -> list[ModelCheck]:
    screen = screen.subset()
    return [ModelCheck(base, c, screen.check(compose(base, op_class, op_type, c.numerics))) for c in cands]


def profile_knobs(base: str, op_class: str, op_type: str, cand: Candidate) -> dict[str, Any]:
    """The class knobs the TOML sets: those the hypothesis's kernel reads that differ from the base."""
    current = base_profile(base).numerics_for(op_class, op_type)
    num = cand.numerics
    keys = [*cand.reads, "compute"] if current.compute == "float" or num.compute == "float" else cand.reads
    return {k: getattr(num, k) for k in keys if getattr(current, k) != getattr(num, k)}


def profile_document(name: str, description: str, base: str, op_class: str, op_type: str,
                     cand: Candidate) -> dict[str, Any]:
    """The TOML-shaped profile: ``base`` plus the class knobs (and the op type's) that differ."""
    p = base_profile(base)
    doc: dict[str, Any] = {"name": name, "description": description,
                           "base": "onnxruntime" if base == FLOAT_BASE else base}
    if base == FLOAT_BASE:
        doc["defaults"] = {"compute": "float"}
    current = p.classes[op_class]
    knobs = {k: v for k, v in profile_knobs(base, op_class, op_type, cand).items() if getattr(current, k) != v}
    if knobs:
        doc[op_class] = knobs
    if op_type in p.ops:
        doc["ops"] = {op_type: {k: getattr(cand.numerics, k) for k in p.ops[op_type]}}
    return doc


def write_profile(doc: Mapping[str, Any], header: str, path: Path | None = None) -> tuple[str, Path]:
    """The TOML text, written to ``path`` (or a temporary file), and the path."""
    text = dumps(doc, header)
    if path is None:
        fd, name = tempfile.mkstemp(prefix="qprobe-fitted-", suffix=".toml")
        path = Path(name)
        with open(fd, "w") as fh:
            fh.write(text)
    else:
        Path(path).write_text(text)
    return text, Path(path)


def verify(model: ir.Model, replay: Backend, inputs: InputSet, path: Path) -> tuple[TensorFit, ...]:
    """``compare --ref <target> --target engine:<path> --probe all`` on the recorded rows."""
    return check(model, replay, inputs, create_backend(f"engine:{path}"))
