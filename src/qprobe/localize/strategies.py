"""Localization strategies: generators that yield target runs and return a Divergence.

``probe-all``  one run with every op output probed (accumulated error at every tensor),
               checked against the unprobed run (a probe that changes the final outputs
               makes the probed tensors untrusted: fall back to cuts); then the failing
               ops are isolated (local error), several per run as the target allows.
``isolate``    every candidate op (or a chosen set) cut into a one-op island fed with the
               reference's inputs; islands share runs up to the target's outputs per run.
``bisect``     for targets with few outputs per run or slow runs: prefix cuts that search
               back from the failing output for the first failing tensor (a binary search
               over the failing tensor's ancestors, which is plain bisection on a chain),
               then one run that isolates it. At most ceil(log2 N) + 2 target runs.
``auto``       the cheapest in estimated target runs for the target's declared
               capabilities; ties prefer the most informative (probe-all, isolate, bisect).

Every strategy starts with the model as given (the verdict that matters, and the
reference point of the probe-effect check).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from qprobe.errors import InputError
from qprobe.localize.conclude import Conclusion, conclude
from qprobe.localize.divergence import CULPRIT, UNCONFIRMED, Divergence
from qprobe.localize.graph import OpGraph, OpNode
from qprobe.localize.groups import group_search
from qprobe.localize.state import Command, Knowledge, Outcome, RunCut, RunModel, TargetTraits, run_wave, waves

STRATEGIES = ("auto", "probe-all", "isolate", "bisect")
Steps = Generator[Command, Outcome, str | None]


@dataclass(frozen=True)
class Choice:
    strategy: str
    reason: str
    estimates: dict[str, float]


def bisect_budget(n_ops: int) -> int:
    """Target runs bisect may use for ``n_ops`` ops: the unprobed run, the search, the confirmation."""
    return math.ceil(math.log2(max(n_ops, 1))) + 2


def estimate_runs(graph: OpGraph, traits: TargetTraits) -> dict[str, float]:
    """Target runs each strategy needs to find and confirm the culprit (inf: impossible here).

    Classifying the ops after the culprit (``classify``) can add runs to probe-all and isolate
    when the target returns few outputs per run; bisect never exceeds its budget."""
    cap = traits.outputs_per_run
    n_obs = len(graph.observed())
    room = cap - len(graph.graph_outputs)
    probe_all = 1 + max(1, math.ceil(n_obs / room)) + (1 if traits.accepts_models else 0) if room >= 1 else math.inf
    if not traits.accepts_models:
        return {"probe-all": probe_all, "isolate": math.inf, "bisect": math.inf}
    return {
        "probe-all": probe_all,
        "isolate": 1 + max(1, math.ceil(n_obs / cap)),
        "bisect": float(bisect_budget(len(graph.ops))),
    }


def choose_strategy(graph: OpGraph, traits: TargetTraits, requested: str = "auto") -> Choice:
    if requested not in STRATEGIES:
        raise InputError(f"unknown strategy {requested!r}; known: {', '.join(STRATEGIES)}")
    est = estimate_runs(graph, traits)
    caps = (f"target: {'any number of' if traits.max_outputs is None else f'at most {traits.max_outputs}'} "
            f"outputs per run, ~{traits.cost_per_run_s:g} s per run"
            f"{', replays recorded tensors (no cut models)' if not traits.accepts_models else ''}")
    est_txt = ("estimated target runs to find and confirm the culprit: "
               + ", ".join(f"{k} {_fmt(v)}" for k, v in est.items()))
    if requested != "auto":
        if math.isinf(est[requested]):
            raise InputError(f"strategy {requested!r} cannot run on this target ({caps}); use --strategy auto")
        return Choice(requested, f"requested; {est_txt}", est)
    best = min(("probe-all", "isolate", "bisect"), key=lambda s: est[s])  # min keeps the first on ties
    if math.isinf(est[best]):
        raise InputError(f"no strategy can run on this target ({caps})")
    if traits.cost_per_run_s == 0 and not math.isinf(est["probe-all"]):
        best = "probe-all"  # runs cost nothing: take the most informative
    why = {
        "probe-all": "runs are cheap: accumulated error at every tensor in a probed run, then the local error "
                     "of the failing ops" if traits.cost_per_run_s == 0 else
                     "accumulated error at every tensor in a probed run, then the local error of the failing ops",
        "isolate": "one-op cuts cost fewer runs than probing every tensor",
        "bisect": "few outputs per run: a search over prefix cuts needs the fewest runs",
    }[best]
    return Choice(best, f"{caps}; {est_txt}; chose {best}: {why}", est)


def _fmt(v: float) -> str:
    return "impossible" if math.isinf(v) else str(int(v))


def localize_machine(
    graph: OpGraph,
    traits: TargetTraits,
    strategy: str = "auto",
    ops: Sequence[str] | None = None,
    classify: bool = True,
) -> Generator[Command, Outcome, Divergence]:
    """The localization state machine: yields target runs, returns the Divergence."""
    chosen = _chosen_ops(graph, ops)
    if chosen and strategy not in ("auto", "isolate"):
        raise InputError(f"--ops chooses the ops to isolate; it applies to --strategy isolate, not {strategy}")
    choice = choose_strategy(graph, traits, "isolate" if chosen else strategy)
    k = Knowledge(graph)
    used, budget = choice.strategy, None
    if choice.strategy == "probe-all":
        culprit = yield from _probe_all(graph, traits, k, classify)
        if not k.probes_trusted:
            used = f"probe-all -> {k.fallback}"
    elif choice.strategy == "isolate":
        culprit = yield from _isolate(graph, traits, k, chosen, classify)
    else:
        budget = bisect_budget(len(graph.ops))
        culprit = yield from _bisect(graph, traits, k, classify)
    if culprit is None and traits.accepts_models and k.failing_outputs():
        culprit = yield from group_search(graph, traits, k)
        if culprit is not None:
            used += " + groups"
    role = CULPRIT if traits.accepts_models else UNCONFIRMED
    return conclude(k, Conclusion(culprit, role, used, strategy, choice.reason, budget, choice.estimates))


def _chosen_ops(graph: OpGraph, ops: Sequence[str] | None) -> list[OpNode] | None:
    if not ops:
        return None
    unknown = [o for o in ops if o not in graph.names]
    if unknown:
        raise InputError(f"unknown op(s) {unknown}; the candidate ops are: {', '.join(graph.names)}")
    return [o for o in graph.ops if o.name in set(ops)]


def _run(k: Knowledge, cmd: Command, trust: bool = True) -> Generator[Command, Outcome, Outcome]:
    out = yield cmd
    k.record(cmd, out, trust_accumulated=trust and not out.changed_outputs)
    return out


def _plain(k: Knowledge) -> Generator[Command, Outcome, None]:
    if not k.plain_done:
        yield from _run(k, RunModel((), "the model as given: final outputs, no probes"))


def _probe_all(graph: OpGraph, traits: TargetTraits, k: Knowledge, classify: bool) -> Steps:
    yield from _plain(k)
    probes = [t for t in graph.observed() if t not in graph.graph_outputs]
    if traits.available_tensors is not None:
        probes = [t for t in probes if t in traits.available_tensors]
    room = traits.outputs_per_run - len(graph.graph_outputs)
    if room < 1:
        k.probes_trusted = False
        k.notes.append("the target returns too few outputs per run to add probes to the model; using cuts")
        return (yield from _cuts_fallback(graph, traits, k, classify))
    for chunk in _chunks(probes, room):
        out = yield from _run(k, RunModel(tuple(chunk), "probe every op output (accumulated error)"))
        if out.changed_outputs:
            k.probes_trusted = False
            k.notes.append(
                f"probing changed the target's final outputs ({', '.join(out.changed_outputs)}): the probed "
                "tensors are not what the unprobed model computes, so they are not used; falling back to cuts"
            )
            return (yield from _cuts_fallback(graph, traits, k, classify))
    failing = [o for o in graph.ops if k.acc_failed(o)]
    if not traits.accepts_models:
        if failing:
            k.notes.append("the target replays recorded tensors and cannot run cut models: the first failing "
                           "tensor's op is only a candidate; rerun against a target that runs models to confirm")
        return failing[0].name if failing else None
    if not failing and k.failing_outputs():
        k.notes.append("the final outputs fail but no probed tensor does: isolating every op")
        failing = list(graph.ops)
    return (yield from _isolate_until_culprit(traits, k, failing, classify))


def _cuts_fallback(graph: OpGraph, traits: TargetTraits, k: Knowledge, classify: bool) -> Steps:
    est = estimate_runs(graph, traits)
    if est["isolate"] - 1 <= est["bisect"] - 1 or traits.cost_per_run_s == 0:
        k.fallback = "isolate"
        return (yield from _isolate(graph, traits, k, None, classify))
    k.fallback = "bisect"
    return (yield from _bisect(graph, traits, k, classify))


def _ops_of(ops: Sequence[OpNode], cmd: RunCut) -> list[OpNode]:
    return [o for o in ops if o.name in cmd.isolate]


def _isolate_until_culprit(traits: TargetTraits, k: Knowledge, ops: Sequence[OpNode], classify: bool) -> Steps:
    """Isolate ``ops`` in as few runs as fit; the culprit is the first that fails in isolation."""
    purpose = "isolate: each op fed the reference's inputs (local error)"
    cuts = [RunCut(isolate=tuple(o.name for o in batch),
                   purpose=purpose) for batch in _batches(ops, traits.outputs_per_run)]
    for wave in waves(cuts, traits.concurrency):
        yield from run_wave(k, wave)
        if not classify and any(k.iso_failed(traits_op) for c in wave for traits_op in _ops_of(ops, c)):
            break
    culprit = next((o.name for o in ops if k.iso_failed(o)), None)
    if culprit is None and ops:
        k.notes.append(
            "every failing op is fine in isolation: the error comes from a tensor no probe or cut sees "
            "(inside a group the target fuses) or from how the target combines ops"
        )
    return culprit


def _isolate(
    graph: OpGraph, traits: TargetTraits, k: Knowledge, chosen: Sequence[OpNode] | None, classify: bool
) -> Steps:
    yield from _plain(k)
    culprit = yield from _isolate_until_culprit(traits, k, chosen or graph.ops, classify)
    if culprit is not None and classify:
        c = graph.op(culprit)
        wanted = [t for t in c.inputs if t not in graph.graph_inputs] + list(c.outputs)
        wanted += [t for o in graph.downstream(culprit) for t in o.outputs]
        cap = int(min(traits.outputs_per_run, len(wanted)))
        purpose = "accumulated error at the culprit's inputs, the culprit and the ops downstream"
        yield from _run(k, RunCut(prefix=tuple(dict.fromkeys(wanted))[:cap], purpose=purpose))
    return culprit


def _bisect(graph: OpGraph, traits: TargetTraits, k: Knowledge, classify: bool) -> Steps:
    start = k.target_runs - (1 if k.plain_done else 0)  # the unprobed run is part of the budget
    budget = bisect_budget(len(graph.ops))
    yield from _plain(k)
    heads = [graph.op(graph.output_ops[o]) for o in k.failing_outputs() if graph.output_ops.get(o)]
    if not heads:
        k.notes.append("bisect: the final outputs pass, so there is no failing tensor to search back from")
        return None
    h = min(heads, key=lambda o: graph.position(o.name))
    cands = [o for o in graph.ops if o.name in h.upstream] + [h]
    while len(cands) > 1 and k.target_runs - start < budget - 1:
        q = _split(cands, h)
        tensors = q.outputs[: int(min(traits.outputs_per_run, len(q.outputs)))]
        yield from _run(k, RunCut(prefix=tensors, purpose=f"prefix cut up to {q.name} (search)"))
        below = {o.name for o in cands if o is q or o.name in q.upstream}
        if k.acc_failed(q):
            h, cands = q, [o for o in cands if o.name in below]
        else:
            cands = [o for o in cands if o is h or o.name not in below]
    if len(cands) > 1:
        k.notes.append(f"bisect: the search budget is spent with {len(cands)} candidates left "
                       f"({', '.join(o.name for o in cands)}); isolating them")
    yield from _confirm(graph, traits, k, h, cands, classify)
    if k.iso_failed(h) is False:
        k.notes.append(
            f"the first failing tensor found, {', '.join(h.outputs)}, comes from {h.name}, which is fine in "
            "isolation: the error is carried from a tensor the bisection could not see (inside a fused group, "
            "or on a branch that a one-output prefix cut does not cover)"
        )
    failing = [o for o in {*cands, h} if k.iso_failed(o)]
    return min(failing, key=lambda o: graph.position(o.name)).name if failing else None


def _split(cands: Sequence[OpNode], h: OpNode) -> OpNode:
    """The query that best halves the candidates (a fail keeps its ancestors, a pass drops them)."""
    n = len(cands)
    best, best_cost = cands[0], math.inf
    for q in cands:
        if q is h:
            continue
        fail = sum(1 for o in cands if o is q or o.name in q.upstream)
        cost = max(fail, n - fail)
        if cost < best_cost:
            best, best_cost = q, cost
    return best


def _confirm(
    graph: OpGraph, traits: TargetTraits, k: Knowledge, h: OpNode, cands: Sequence[OpNode], classify: bool
) -> Generator[Command, Outcome, None]:
    """One run: isolate the first failing op (and leftover candidates), its inputs' accumulated
    error, and, as capacity allows, the downstream ops in isolation (classification)."""
    cap = traits.outputs_per_run
    iso = [h, *[o for o in cands if o is not h]]
    while len(iso) > 1 and sum(len(o.outputs) for o in iso) > cap:
        iso.pop()
    used = sum(len(o.outputs) for o in iso)
    prefix = tuple(t for t in h.inputs if t not in graph.graph_inputs)
    # a prefix that computes another isolated op would make the cut copy that op under a new
    # name (``__iso``), which targets that key behavior on node names would not recognize
    prefix = prefix if used + len(prefix) <= cap and len(iso) == 1 else ()
    used += len(prefix)
    skipped = 0
    for o in graph.downstream(h.name) if classify else ():
        if used + len(o.outputs) <= cap:
            iso.append(o)
            used += len(o.outputs)
        else:
            skipped += 1
    if skipped:
        k.notes.append(f"{skipped} downstream ops were not isolated: the target returns at most "
                       f"{traits.max_outputs} outputs per run and the run budget is spent")
    purpose = (f"confirm {h.name} in isolation, its inputs' accumulated error"
               + (", classify downstream ops" if classify else ""))
    yield from _run(k, RunCut(isolate=tuple(o.name for o in iso), prefix=prefix, purpose=purpose))


def _chunks(items: Sequence[str], size: float) -> list[list[str]]:
    if not items:
        return []
    n = int(min(size, len(items)))
    return [list(items[i : i + n]) for i in range(0, len(items), n)]


def _batches(ops: Sequence[OpNode], cap: float) -> list[list[OpNode]]:
    out: list[list[OpNode]] = []
    cur: list[OpNode] = []
    used = 0
    for o in ops:
        if cur and used + len(o.outputs) > cap:
            out.append(cur)
            cur, used = [], 0
        cur.append(o)
        used += len(o.outputs)
    return out + ([cur] if cur else [])
