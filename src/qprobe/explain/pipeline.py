"""``explain``: from a localized op to ranked arithmetic hypotheses, evidence, envelope and a fitted profile.

Steps (target runs are ``Backend.open`` calls on the target, counted): find the op (``node``,
a ``Divergence`` file, a repro bundle, or ``localize``'s culprit); one probed run of the whole
model on both backends (every tensor: the check of the op's inputs and the trace the fitted
profile is held to); the op's observations (localize's or the bundle's isolated arrays,
else one isolated run); the search over the class's hypothesis space; model-free evidence;
optionally characterization runs and the envelope; then the base profile, the whole-model
ranking of the top hypotheses and the fitted profile, verified against the target's trace.
Below 99 % exact match nothing is claimed: ``explained`` is false, non-arithmetic causes
that fit are ranked, the rule-out checklist is attached and no profile is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qprobe import serde
from qprobe.backends.base import Backend, backend_label, describe_backend
from qprobe.backends.command import run_log
from qprobe.compare import TolerancePolicy, resolve_inputs
from qprobe.errors import InputError
from qprobe.explain.causes import checklist_lines, rank_causes
from qprobe.explain.characterize import characterize as run_characterization
from qprobe.explain.envelope import Envelope
from qprobe.explain.evaluate import AccSet, ObservationSet, PairSet, Score, UnarySet
from qprobe.explain.evidence import linear_fit, sentence
from qprobe.explain.explanation import Explanation, Hypothesis
from qprobe.explain.fitted import (
    ModelCheck,
    Screen,
    TensorFit,
    choose_base,
    profile_document,
    rank_on_model,
    verify,
    write_profile,
)
from qprobe.explain.observe import InputCheck, Observation, from_bundle, observation
from qprobe.explain.opspec import GroupSpec, group_spec
from qprobe.explain.pattern import pattern
from qprobe.explain.runs import OBS_ELEMENTS, Captured, ReplayBackend, capture, kept_inputs, run_model, spread
from qprobe.explain.search import Ranked, search
from qprobe.explain.space import Candidate, candidates
from qprobe.localize import build_op_graph, localize
from qprobe.localize.divergence import Divergence
from qprobe.localize.graph import OpNode
from qprobe.localize.runner import CountedBackend
from qprobe.model.extract import Cutter
from qprobe.model.inputs import InputSet
from qprobe.model.probe import apply_probe_plan, plan_probes
from qprobe.model.quant import build_quant_index

EXPLAINED = 0.99
MODEL_CHECKED = 6
Progress = Callable[[str], None]


@dataclass
class _Run:
    """What one explain call has gathered so far."""

    model: ir.Model
    ref: Backend
    target: CountedBackend
    inputs: InputSet
    batch_size: int
    progress: Progress | None
    notes: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        if self.progress:
            self.progress(text)


def _culprit(run: _Run, node: str | None, divergence: Path | None, bundle: Path | None,
             policy: TolerancePolicy | None) -> tuple[str, dict[str, dict[str, np.ndarray]] | None, str]:
    """(node, isolated arrays if already measured, where they come from)."""
    if sum(x is not None for x in (node, divergence, bundle)) > 1:
        raise InputError("give at most one of --node, --divergence and --bundle")
    if node is not None:
        return node, None, ""
    if bundle is not None:
        name, ins, exp, obs = from_bundle(bundle)
        return name, {"inputs": ins, "expected": {"": exp}, "observed": {"": obs}}, f"the repro bundle {bundle}"
    if divergence is not None:
        div = Divergence.load(divergence)
        if div.culprit is None or div.culprit.group:
            raise InputError(f"{divergence} names no single culprit op ({div.verdict()}); pass --node")
        return div.culprit.op, None, ""
    run.say("localizing the culprit")
    loc = localize(run.model, run.ref, run.target, run.inputs, policy=policy, batch_size=run.batch_size)
    c = loc.divergence.culprit
    if c is None:
        raise InputError(f"localize found no op to explain: {loc.divergence.verdict()}; pass --node to explain one")
    if c.group:
        raise InputError(f"localize's culprit is the fused group {{{', '.join(c.group)}}}: each of its ops is right "
                         "alone, and explain models one op at a time; pass --node to explain one of them anyway")
    iso = loc.isolated.get(c.op)
    arrays = None if iso is None else {"inputs": iso.inputs, "expected": iso.expected, "observed": iso.observed}
    return c.op, arrays, "localize's isolated run"


def _op(model: ir.Model, node: str) -> tuple[OpNode, GroupSpec, ir.Model]:
    graph = build_op_graph(model, build_quant_index(model))
    if node not in graph.names:
        raise InputError(f"node {node!r} is not a compute op of the model; ops: {', '.join(graph.names)}")
    op = graph.op(node)
    cut = Cutter(model).cut(op.inputs, op.outputs)
    return op, group_spec(cut, node), cut


def _observe(run: _Run, op: OpNode, cut: ir.Model, arrays: dict[str, dict[str, np.ndarray]] | None, source: str,
             ref: Captured, tgt: Captured, checks: tuple[InputCheck, ...]) -> Observation:
    out = op.outputs[0]
    if arrays is not None:
        exp, obs = (next(iter(arrays[k].values())) if "" in arrays[k] else arrays[k][out] for k
                    in ("expected", "observed"))
        return observation(op.name, op.op_type, arrays["inputs"], exp, obs, source, checks)
    if not run.target.capabilities().accepts_models:
        ins = {t: tgt.kept[t] for t in op.inputs}
        exp = run_model(run.ref, cut, InputSet(ins, "the target's codes"), batch_size=run.batch_size)[out]
        return observation(op.name, op.op_type, ins, exp, tgt.kept[out], "the target's recorded tensors", checks)
    full = {**run.inputs.arrays, **ref.full}
    feeds = InputSet({t: full[t] for t in op.inputs}, "the reference's codes at the op's inputs")
    keep = spread(feeds.num_samples, float(full[out][0].size), OBS_ELEMENTS)
    run.say("isolated run of the op on the target")
    exp = run_model(run.ref, cut, feeds, keep, run.batch_size)[out]
    obs = run_model(run.target, cut, feeds, keep, run.batch_size)[out]
    return observation(op.name, op.op_type, {t: v[keep] for t, v in feeds.arrays.items()}, exp, obs,
                       "an isolated run (the op's cut fed with the reference's codes)", checks)


def observation_sets(obs: Observation, gs: GroupSpec, rng: np.random.Generator) -> list[ObservationSet]:
    spec, qi = gs.spec, gs.quantized_inputs
    per_tensor = all(q.per_tensor for _i, q in qi) and spec.out_q.per_tensor
    pairs = gs.op_class in ("eltwise", "mul") and len(qi) == 2 and all(q.dtype in ("int8", "uint8") for _i, q in qi)
    if pairs and per_tensor:
        return [PairSet(obs.node, gs, gs.operand(qi[0][0], obs.inputs), gs.operand(qi[1][0], obs.inputs), obs.observed,
                        rng)]
    if gs.op_class == "concat" and spec.op_type == "Concat" and per_tensor:
        return [UnarySet(obs.node, gs, [gs.operand(i, obs.inputs) for i, _q in qi], obs.observed)]
    if gs.op_class in ("conv", "gemm"):
        args = [obs.inputs[op.name] if op.const is None and op.name else op.const for op in spec.inputs]
        return [AccSet(obs.node, gs, args, obs.observed, rng)]
    return []


def _hypothesis(r: Ranked, check: ModelCheck | None = None) -> Hypothesis:
    c, s = r.candidate, r.score
    return Hypothesis(c.op_class, c.base, dict(c.knobs), s.exact, s.mean_delta, s.mean_abs, s.max_abs, c.family,
                      r.equivalents, None if check is None else len(check.failed),
                      () if check is None else check.failed)


def _top(ranked: list[Ranked], sets: list[ObservationSet],
         k: int = 4) -> Callable[[list[ObservationSet]], list[Candidate]]:
    """The current top distinct hypotheses, re-scored with characterization sets as they come."""
    head = [r.candidate for r in ranked[: 2 * k]]

    def top(extra: list[ObservationSet]) -> list[Candidate]:
        scored = [(Score.combine([s.full(c)[0] for s in [*sets, *extra]]), c) for c in head]
        scored.sort(key=lambda sc: (-sc[0].exact, sc[0].mean_abs, sc[1].complexity))
        return [c for _s, c in scored[:k]]

    return top


def _pool(ranked: list[Ranked], groups: int = 8, per_group: int = 24, margin: float = 0.01) -> list[Candidate]:
    """The candidates worth re-ranking on more data: the members of the best groups, simplest first."""
    best = ranked[0].score.exact if ranked else 0.0
    out: dict[int, Candidate] = {}
    for r in [r for r in ranked if r.score.exact >= best - margin][:groups] or ranked[:1]:
        for m in sorted(r.members or (r.candidate,), key=lambda c: c.complexity)[:per_group]:
            out[id(m)] = m
    return list(out.values())


def _characterize(run: _Run, gs: GroupSpec, ranked: list[Ranked], sets: list[ObservationSet], budget: int,
                  rng: np.random.Generator) -> tuple[list[Ranked], tuple[Envelope, ...], int]:
    if not run.target.capabilities().accepts_models:
        run.notes.append("no characterization: the target replays recorded data and cannot run probe models")
        return ranked, (), 0
    if gs.op_class not in ("eltwise", "concat", "conv") or gs.spec.op_type not in ("Add", "Sub", "Concat", "Conv"):
        run.notes.append(f"no characterization probes for {gs.spec.op_type} yet (Add, Sub, Concat and Conv have them)")
        return ranked, (), 0
    before = run.target.opened
    ch = run_characterization(gs.op_class, gs.spec.op_type, run.ref, run.target, _top(ranked, sets), budget, rng,
                              run.progress)
    run.notes.extend(ch.notes)
    pool = _pool(ranked)
    run.say(f"re-ranking {len(pool)} hypotheses on the culprit and {len(ch.sets)} probe subgraphs")
    reranked, _stats = search(pool, [*sets, *ch.sets], max_groups=12, min_groups=6, per_group=2)
    return reranked or ranked, ch.envelopes, run.target.opened - before


def _model_rank(run: _Run, gs: GroupSpec, ranked: list[Ranked], screen: Screen
                ) -> tuple[list[tuple[Ranked, ModelCheck | None]], str | None]:
    if not ranked:
        return [], None
    cls, op_type = gs.op_class, gs.spec.op_type
    run.say("choosing the base profile: the best hypothesis on every built-in profile, against the target's trace")
    base = choose_base(screen, cls, op_type, ranked[0].candidate)[0].base
    top = ranked[:MODEL_CHECKED]
    run.say(f"checking the top {len(top)} hypotheses on the whole model")
    checks = rank_on_model(screen, cls, op_type, base, [r.candidate for r in top])
    checked = sorted(zip(top, checks, strict=True),
                     key=lambda rc: (len(rc[1].failed), -rc[0].score.exact, rc[0].score.mean_abs))
    pairs: list[tuple[Ranked, ModelCheck | None]] = [(r, c) for r, c in checked]
    return pairs + [(r, None) for r in ranked[MODEL_CHECKED:]], base


def _input_checks(op: OpNode, ref: Captured, tgt: Captured) -> tuple[InputCheck, ...]:
    out = []
    for t in op.inputs:
        if t not in ref.kept or t not in tgt.kept:
            continue
        same = float(np.mean(ref.kept[t] == tgt.kept[t])) if ref.kept[t].shape == tgt.kept[t].shape else 0.0
        out.append(InputCheck(t, same, "exact" if same == 1.0 else "differs",
                              "identical codes" if same == 1.0 else f"{100 * (1 - same):.2f}% of the codes differ"))
    return tuple(out)


def _header(run: _Run, best: Hypothesis, base: str, rows: tuple[TensorFit, ...]) -> str:
    bad = [r.tensor for r in rows if r.failed]
    lines = [f"Fitted by qprobe explain against {run.target.spec}: a hypothesis about its arithmetic, not a vendor "
             f"fact.",
             f"{best.op_class}: {best.label()} (reproduces {100 * best.exact_match:.2f}% of the culprit's codes)",
             f"on base profile {base}."]
    if rows:
        lines.append(f"Whole-model check on the target's trace: {len(rows) - len(bad)}/{len(rows)} tensors pass "
                     "(cos >= 0.999, |mean delta| <= 0.5 LSB)" + (f"; FAILING: {', '.join(bad)}" if bad else "") + ".")
    return "\n".join(lines)


def _fitted(run: _Run, gs: GroupSpec, cand: Candidate, best: Hypothesis, base: str, screen: Screen,
            profile_out: Path | None) -> tuple[str, tuple[TensorFit, ...]]:
    doc = profile_document(f"fitted-{gs.spec.node}", f"{best.label()} for every {gs.op_class} op, on {base}; "
                           f"fitted by qprobe explain to {run.target.spec}", base, gs.op_class, gs.spec.op_type, cand)
    text, path = write_profile(doc, _header(run, best, base, ()))
    try:
        run.say("verifying the fitted profile (engine:fitted.toml) against the target on every tensor")
        replay = ReplayBackend(run.target.spec, screen.target)
        rows = verify(run.model, replay, screen.inputs, path)
    finally:
        path.unlink(missing_ok=True)
    text, _p = write_profile(doc, _header(run, best, base, rows), None if profile_out is None else Path(profile_out))
    if profile_out is None:
        _p.unlink(missing_ok=True)
    return text, rows


def _gather(run: _Run, op: OpNode, cut: ir.Model, arrays: dict[str, dict[str, np.ndarray]] | None, source: str
            ) -> tuple[Observation, Screen, tuple[InputCheck, ...]]:
    """One probed run of the whole model on both backends (every tensor), then the observations."""
    run.say("probed run of the whole model (every tensor) on both backends")
    index = build_quant_index(run.model)
    plan = plan_probes(run.model, index, "all")
    ref_cap = capture(run.ref, run.model, plan, run.inputs, set(op.inputs) | set(op.outputs), batch_size=run.batch_size)
    tgt_cap = capture(run.target, run.model, plan, run.inputs, set(), ref_cap.keep, run.batch_size)
    checks = _input_checks(op, ref_cap, tgt_cap)
    obs = _observe(run, op, cut, arrays, source, ref_cap, tgt_cap, checks)
    if obs.sampled:
        run.notes.append(f"memory bound: the observations keep {obs.samples.size} of {obs.total_samples} samples "
                         "(evenly spread)")
    screen = Screen(apply_probe_plan(run.model, plan), tgt_cap.kept, kept_inputs(run.inputs, tgt_cap.keep), index)
    return obs, screen, checks


def _sets(run: _Run, obs: Observation, gs: GroupSpec, rng: np.random.Generator) -> list[ObservationSet]:
    sets = observation_sets(obs, gs, rng)
    if not sets:
        run.notes.append(f"explain has no hypothesis space for {gs.spec.op_type} ({gs.op_class}) with these "
                         "quantizations yet; the evidence below is model-free only")
    return sets


def explain(
    model: ir.Model, ref: Backend, target: Backend, inputs: InputSet | None, *, node: str | None = None,
    divergence: Path | None = None, bundle: Path | None = None, characterize: bool = False, budget: int = 4,
    policy: TolerancePolicy | None = None, progress: Progress | None = None, batch_size: int = 64,
    model_name: str = "", profile_out: Path | None = None, seed: int = 0,
) -> Explanation:
    """Explain what the target computes for one op (see the module docstring)."""
    counted = CountedBackend(target)
    cached_before = run_log()[1]
    run = _Run(model, ref, counted, inputs or resolve_inputs(model, None, (ref, target)), batch_size, progress)
    name, arrays, source = _culprit(run, node, divergence, bundle, policy)
    op, gs, cut = _op(model, name)
    obs, screen, checks = _gather(run, op, cut, arrays, source)
    rng = np.random.default_rng(seed)
    sets = _sets(run, obs, gs, rng)
    cands = candidates(gs.op_class, gs.spec.op_type) if sets else []
    run.say(f"searching {len(cands)} hypotheses for {gs.spec.op_type} ({gs.op_class})")
    ranked, stats = search(cands, sets) if sets else ([], None)
    envelopes: tuple[Envelope, ...] = ()
    char_runs = 0
    if characterize and sets:
        ranked, envelopes, char_runs = _characterize(run, gs, ranked, sets, budget, rng)
    pairs, base = _model_rank(run, gs, ranked, screen)
    hyps = tuple(_hypothesis(r, c) for r, c in pairs[:20])
    best = hyps[0] if hyps else None
    explained = best is not None and best.exact_match >= EXPLAINED
    pat, fit = pattern(obs, gs), linear_fit(obs, gs)
    text: str | None = None
    rows: tuple[TensorFit, ...] = ()
    if explained and best is not None and base is not None:
        text, rows = _fitted(run, gs, pairs[0][0].candidate, best, base, screen, profile_out)
    elif best is not None:
        run.notes.append(f"unexplained: the best hypothesis reproduces {100 * best.exact_match:.2f}% of the op's "
                         f"output codes (below {100 * EXPLAINED:.0f}%); no fitted profile is written")
    return Explanation(
        explained=explained, node=op.name, op_type=op.op_type, op_class=gs.op_class, best=best, hypotheses=hyps,
        linear_fit=fit, sentence=sentence(fit, op.op_type), envelope=envelopes[0] if envelopes else None,
        envelopes=envelopes, profile=text,
        target_runs=counted.opened, target_runs_cached=run_log()[1] - cached_before, notes=tuple(run.notes),
        pattern=pat,
        causes=() if explained else tuple(rank_causes(pat)), checklist=() if explained else tuple(checklist_lines()),
        profile_base=base if explained else None, profile_check=rows, input_checks=checks,
        characterization_runs=char_runs, observations=obs.describe(),
        search={} if stats is None else {"candidates": stats.candidates, "coarse": stats.coarse_evaluations,
                                         "full": stats.full_evaluations, "seconds": stats.seconds,
                                         "per_second": stats.per_second},
        model=model_name, ref=backend_label(ref), target=backend_label(target),
        provenance=serde.provenance(backends={"ref": describe_backend(ref), "target": describe_backend(target)}),
    )
