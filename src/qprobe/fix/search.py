"""``fix``: find the culprit, apply every rewrite pass to it, verify each candidate, rank them.

The culprit comes from ``--node`` or from ``localize`` on the target. The emulation is the
given profile or, without one, the profile ``explain`` fits on the target
(``explain_bridge``); the envelope is explain's or is measured on the emulation
(``envelope.sweep_envelope``). Candidates run stages (a) and (b) (``verify``) on the reference
and the emulation, in parallel when the emulation allows it; the best ``verify_on_target``
predicted ones then run once each on the target. Target runs are counted as ``Backend.open``
calls on the target, for localize, explain and verification together.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from qprobe.backends.base import Backend
from qprobe.backends.command import run_log
from qprobe.compare.inputs import resolve_inputs
from qprobe.compare.policy import TolerancePolicy
from qprobe.errors import InputError
from qprobe.fix.envelope import SweptEnvelope, op_class_of, sweep_envelope
from qprobe.fix.explain_bridge import explain_emulation, explain_function
from qprobe.fix.measure import EMULATION, Baseline, StageResult, culprit_verdict, measure
from qprobe.fix.rank import board_note, ranked
from qprobe.fix.result import PREDICTED, Candidate, FixResult
from qprobe.fix.run import real, run_model
from qprobe.fix.verify import Verifier, evaluate
from qprobe.localize import localize
from qprobe.localize.runner import CountedBackend
from qprobe.model.graph import graph_output_names
from qprobe.model.inputs import InputSet
from qprobe.model.quant import build_quant_index
from qprobe.rewrite import PASSES, RatioEnvelope, RewriteContext, RewritePass, Site, find_site, get_pass

Progress = Callable[[str], None]
SWEPT = ("eltwise", "concat")


def fix(
    model: ir.Model, ref: Backend, target: Backend, inputs: InputSet | None, *, node: str | None = None,
    emulation: Backend | None = None, envelope: RatioEnvelope | None = None, float_model: Path | None = None,
    calibration: Path | None = None, truth: Mapping[str, np.ndarray] | None = None,
    verify_on_target: int | None = None, policy: TolerancePolicy | None = None, passes: Sequence[str] | None = None,
    batch_size: int = 64, model_name: str = "", progress: Progress | None = None,
) -> FixResult:
    """Rewrite the op the target computes wrong so that the target computes the model right."""
    say = progress or (lambda _msg: None)
    policy = policy or TolerancePolicy()
    counted = CountedBackend(target)
    cached_before = run_log()[1]
    inputs = inputs or resolve_inputs(model, None, (ref, target))
    if emulation is None:
        explain_function()  # fail before any target run when explain is not there to fit a profile
    say("finding the culprit")
    node, source, notes = _culprit(model, ref, counted, inputs, node, policy, batch_size)
    runs = {"localize": counted.opened}
    if emulation is None:
        say(f"explaining {node} on the target")
        ex = explain_emulation(model, ref, counted, inputs, node)
        emulation, envelope = ex.emulation, envelope or ex.envelope
    runs["explain"] = counted.opened - runs["localize"]
    notes += _named_knobs(emulation, node)
    site = _site(model, node)
    say("measuring the safe envelope on the emulation")
    envs = _envelopes(site, ref, emulation, envelope)
    k = _budget(verify_on_target, target)
    base, ref_codes = _baseline(ref, model, inputs, site, truth, batch_size)
    v = Verifier(ref, emulation, counted, inputs, base, site.out_codes.name or "", policy, batch_size)
    ctx = RewriteContext(model, node, envs[_primary(site)].envelope, {c: e.envelope for c, e in envs.items()},
                         _ValueCache(ref, model, inputs, batch_size), float_model, calibration)
    say(f"applying and verifying {len(passes or PASSES)} rewrite passes")
    pairs = _evaluate_all(v, ctx, [get_pass(p) for p in (passes or PASSES)], emulation)
    cands = _on_target(v, pairs, k, say)
    runs["verify"] = counted.opened - runs["localize"] - runs["explain"]
    runs["total"] = counted.opened
    runs["cached"] = run_log()[1] - cached_before  # of the total: served by a command target's cache
    plain = {c: e.envelope for c, e in envs.items()}
    cands = ranked([replace(c, board=board_note(c, plain, node)) for c in cands])
    original = _original(v, model, ref_codes)
    return FixResult(model_name, ref.spec, target.spec, emulation.spec, node, site.node.op_type, site.ratios, source,
                     {c: e.to_json() for c, e in envs.items()}, tuple(cands), (original,), runs, k, tuple(notes))


def _culprit(model: ir.Model, ref: Backend, target: Backend, inputs: InputSet, node: str | None,
             policy: TolerancePolicy, batch_size: int) -> tuple[str, str, list[str]]:
    if node:
        names = [n.name or "" for n in model.graph]
        if node not in names:
            close = difflib.get_close_matches(node, names, n=3)
            raise InputError(f"--node {node!r} is not a node of the model" + (f"; did you mean {', '.join(close)}?"
                             if close else "; `qprobe inspect MODEL` lists them"))
        return node, "--node", []
    div = localize(model, ref, target, inputs, policy=policy, batch_size=batch_size).divergence
    if div.culprit is None:
        raise InputError(f"localize found no op that introduces an error on {target.spec} ({div.verdict()}); "
                         "nothing to fix (or name the op with --node)")
    finals = ", ".join(f"{r.name} cos {r.st.cos:.4f}" for r in div.final_outputs)
    return div.culprit.op, f"localize ({div.strategy}, {div.target_runs} target runs)", [
        f"on the target, the original model's final outputs: {finals}"]


def _named_knobs(emulation: Backend, node: str) -> list[str]:
    """A profile that models the defect on the culprit *by name* cannot judge rewrites that replace it."""
    knobs = dict(getattr(getattr(emulation, "profile", None), "nodes", {}) or {}).get(node)
    if not knobs:
        return []
    return [f"the emulation sets {', '.join(f'{k}={v}' for k, v in knobs.items())} on node {node} by name: a candidate "
            f"that removes or renames {node} is predicted without those knobs (prefer profiles set by op class)"]


def _site(model: ir.Model, node: str) -> Site:
    site = find_site(model, node)
    if isinstance(site, str):
        raise InputError(f"fix rewrites QDQ groups: {site}")
    return site


def _primary(site: Site) -> str:
    return op_class_of(site.node.op_type) or site.node.op_type


def _envelopes(site: Site, ref: Backend, emulation: Backend, given: RatioEnvelope | None) -> dict[str, SweptEnvelope]:
    """The culprit's class envelope (explain's, else swept) and the Concat one (for concat-conv)."""
    primary = _primary(site)
    out: dict[str, SweptEnvelope] = {}
    if given is not None:
        out[primary] = SweptEnvelope(given, (), "explain")
    if len(site.operands) == 2:
        for cls in (primary, "concat"):
            if cls in SWEPT and cls not in out:
                out[cls] = sweep_envelope(site, cls, ref, emulation)
    out.setdefault(primary, SweptEnvelope(RatioEnvelope.unbounded(primary), (), "none: no sweep for this op"))
    return out


def _budget(k: int | None, target: Backend) -> int:
    if not target.capabilities().accepts_models:
        return 0
    return 2 if k is None else max(0, k)


def _baseline(ref: Backend, model: ir.Model, inputs: InputSet, site: Site,
              truth: Mapping[str, np.ndarray] | None, batch_size: int) -> tuple[Baseline, np.ndarray | None]:
    codes = site.out_codes.name or ""
    out = run_model(ref, model, inputs, [codes], batch_size)
    index = build_quant_index(model)
    names = graph_output_names(model)
    t = None
    if truth is not None:
        t = {k: np.asarray(v, np.float64) for k, v in truth.items() if k in names}
        if not t:
            raise InputError(f"the truth has arrays {sorted(truth)}; none is a model output ({names})")
        for k, a in t.items():
            if a.size != out[k].size:
                raise InputError(f"truth {k!r} has {a.size} values, the output {out[k].size} on these inputs")
            t[k] = a.reshape(out[k].shape)
    base = Baseline({n: real(out, index, n) for n in names}, {n: index.quant_of(n) for n in names}, t)
    return base, out.get(codes)


def _evaluate_all(v: Verifier, ctx: RewriteContext, passes: list[RewritePass],
                  emulation: Backend) -> list[tuple[Candidate, np.ndarray | None]]:
    def one(p: RewritePass) -> tuple[Candidate, np.ndarray | None]:
        return evaluate(v, p, p.apply(ctx))

    workers = max(1, emulation.capabilities().concurrency)
    if workers == 1:
        return [one(p) for p in passes]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, passes))


def _on_target(v: Verifier, pairs: list[tuple[Candidate, np.ndarray | None]], k: int, say: Progress) -> list[Candidate]:
    """Stage (c) for the ``k`` best predicted candidates that compute different numbers (a candidate
    whose outputs equal a better one's on the reference and the emulation is not run again)."""
    codes = {c.pass_name: rc for c, rc in pairs}
    cands = ranked([c for c, _ in pairs])
    chosen: dict[str, str] = {}  # fingerprint -> pass verified for it
    out = []
    for c in cands:
        if c.verdict == PREDICTED and c.fingerprint in chosen:
            c = replace(c, verdict_reason=f"{c.verdict_reason}; the same outputs as {chosen[c.fingerprint]}, "
                                          "so not run on the target again")
        elif c.verdict == PREDICTED and len(chosen) < k:
            say(f"verifying {c.pass_name} on the target")
            chosen[c.fingerprint] = c.pass_name
            c = v.on_target(c, codes[c.pass_name])
        out.append(c)
    return out


def _original(v: Verifier, model: ir.Model, ref_codes: np.ndarray | None) -> StageResult:
    out = run_model(v.emulation, model, v.inputs, [v.culprit_codes], v.batch_size)
    index = build_quant_index(model)
    verdict = culprit_verdict(ref_codes, out.get(v.culprit_codes), index.quant_of(v.culprit_codes), v.policy,
                              v.culprit_codes)
    return measure(EMULATION, v.emulation.spec, v.base, out, index, v.policy, verdict)


class _ValueCache:
    """Float values of tensors on the data (the reference's), one reference run per new set of names."""

    def __init__(self, ref: Backend, model: ir.Model, inputs: InputSet, batch_size: int) -> None:
        self.ref, self.model, self.inputs, self.batch_size = ref, model, inputs, batch_size
        self.values: dict[str, np.ndarray] = {}

    def __call__(self, names: Sequence[str]) -> dict[str, Any]:
        missing = [n for n in names if n not in self.values]
        if missing:
            out = run_model(self.ref, self.model, self.inputs, missing, self.batch_size)
            self.values.update({n: np.asarray(out[n]) for n in missing if n in out})
        return {n: self.values[n] for n in names if n in self.values}
