"""Fused groups: when no op fails alone but the model does, isolate connected groups of ops.

A target that fuses ops (an NPU compiler's epoch, OpenVINO's fused kernels) may compute each
op right alone and the group wrong. ``group_search`` is a step of the localization state
machine: it isolates the groups the target says it fuses (``Backend.fusion_groups``), then
every connected pair of ops, then every connected triple (Conv -> Sigmoid -> Mul, Conv -> Add ->
Relu, MatMul -> Softmax -> MatMul), around the first failing tensor when probes showed one,
and names the smallest group whose isolated run fails. Each group is one island: fed the
reference's values of the tensors it reads from outside, returning only the tensors that leave
it (exposing an inner tensor could break the fusion under test).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from qprobe.localize.graph import OpGraph, OpGroup, OpNode, group_of
from qprobe.localize.state import Knowledge, RunCut, TargetTraits, run_wave, waves

MAX_GROUP = 3


def _producers(graph: OpGraph, op: OpNode) -> list[OpNode]:
    return [p for t in op.inputs if (p := graph.producer_of(t)) is not None]


def connected_groups(graph: OpGraph, size: int, heads: Sequence[OpNode]) -> list[OpGroup]:
    """Connected groups of ``size`` ops whose last member is one of ``heads`` (grown backwards
    along producer edges), each once, in the heads' order."""
    found: dict[frozenset[str], None] = {}
    for head in heads:
        frontier = [frozenset({head.name})]
        for _ in range(size - 1):
            frontier = [s | {p.name} for s in frontier for m in s for p in _producers(graph, graph.op(m))
                        if p.name not in s]
        for s in frontier:
            if len(s) == size and max(graph.position(n) for n in s) == graph.position(head.name):
                found.setdefault(s)
    return [group_of(graph, sorted(s, key=graph.position)) for s in found]


def _heads(graph: OpGraph, k: Knowledge) -> list[OpNode]:
    """Where to look: from the first failing tensor the probes saw (and the ops after it), else
    every op."""
    failing = [o for o in graph.ops if k.acc_failed(o)] if k.probes_trusted else []
    if not failing:
        return list(graph.ops)
    first = graph.position(failing[0].name)
    return [o for o in graph.ops if graph.position(o.name) >= first]


def _compatible(a: OpGroup, b: OpGroup, graph: OpGraph) -> bool:
    """Two groups can share one merged cut when they share no op and neither reads a tensor the
    other computes (each island is fed, or computes, its boundary tensors, never both)."""
    if set(a.ops) & set(b.ops):
        return False
    made_a = {t for n in a.ops for t in graph.op(n).outputs}
    made_b = {t for n in b.ops for t in graph.op(n).outputs}
    return not (set(a.inputs) & made_b or set(b.inputs) & made_a)


def _batches(groups: Sequence[OpGroup], cap: float, graph: OpGraph) -> list[list[OpGroup]]:
    """Runs of mutually compatible groups, each within the target's outputs per run (first fit)."""
    runs: list[list[OpGroup]] = []
    for g in groups:
        for run in runs:
            fits = sum(len(x.outputs) for x in run) + len(g.outputs) <= cap
            if fits and all(_compatible(g, x, graph) for x in run):
                run.append(g)
                break
        else:
            runs.append([g])
    return runs


def group_search(graph: OpGraph, traits: TargetTraits, k: Knowledge) -> Generator[Any, Any, str | None]:
    """Isolate fused-group candidates, smallest first; return the culprit group's name (its
    ``OpGroup`` is left in ``k.culprit_group``) or None."""
    known = [group_of(graph, g) for g in traits.groups if all(n in graph.names for n in g) and len(g) > 1]
    heads = _heads(graph, k)
    tried: set[tuple[str, ...]] = set()
    for size in range(2, MAX_GROUP + 1):
        cands = [g for g in [*(known if size == 2 else []), *connected_groups(graph, size, heads)]
                 if g.ops not in tried]
        tried.update(g.ops for g in cands)
        # a group whose leaving tensors are more than one run returns cannot be isolated in a run
        wide = [g for g in cands if len(g.outputs) > traits.outputs_per_run]
        if wide:
            cands = [g for g in cands if len(g.outputs) <= traits.outputs_per_run]
            k.notes.append(f"{len(wide)} group(s) of {size} ops leave more tensors than the target returns per run "
                           f"({traits.outputs_per_run:.0f}), e.g. {wide[0].name}: not isolated")
        purpose = (f"isolate groups of {size} ops (fed the reference's inputs): a target may fuse what it "
                   "computes right alone")
        cuts = [RunCut(groups=tuple(g.ops for g in b),
                       purpose=purpose) for b in _batches(cands, traits.outputs_per_run, graph)]
        for wave in waves(cuts, traits.concurrency):
            yield from run_wave(k, wave)
            if any(k.group_failed(g) for c in wave for g in c.groups):
                break
        failing = [g for g in cands if k.group_failed(g.ops)]
        if failing:
            k.culprit_group = failing[0]
            return failing[0].name
    k.notes.append(f"no group of up to {MAX_GROUP} connected ops fails in isolation either: the error needs a "
                   "larger fused region or comes from how the target runs the whole model (memory, scheduling)")
    return None
