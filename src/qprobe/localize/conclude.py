"""From what the runs showed to a Divergence: the culprit's evidence and the roles of the other ops."""

from __future__ import annotations

from dataclasses import dataclass

from qprobe.compare.result import TensorComparison
from qprobe.localize.divergence import (
    CARRIER,
    CULPRIT,
    INTRODUCES,
    UNCLASSIFIED,
    Divergence,
    OpFinding,
    RunRecord,
)
from qprobe.localize.graph import OpGroup, OpNode
from qprobe.localize.state import Knowledge, RunCut, RunModel


@dataclass(frozen=True)
class Conclusion:
    culprit: str | None
    role: str
    strategy: str
    requested: str
    reason: str
    budget: int | None
    estimates: dict[str, float]


def conclude(k: Knowledge, c: Conclusion) -> Divergence:
    g = k.graph
    group = k.culprit_group if c.culprit is not None and k.culprit_group is not None else None
    node = g.op(group.ops[-1]) if group else g.op(c.culprit) if c.culprit else None
    if group is not None:
        culprit: OpFinding | None = _group_finding(k, group)
        inputs = tuple(k.accumulated[t] for t in group.inputs if t in k.accumulated)
    else:
        culprit = _finding(k, node, c.role, _culprit_basis(k, node)) if node else None
        inputs = tuple(k.accumulated[t] for t in node.inputs if t in k.accumulated) if node else ()
    order = [*g.observed(), *g.graph_outputs]
    tensors = [k.accumulated[t] for t in dict.fromkeys(order) if t in k.accumulated]
    tensors += [r for t, r in k.accumulated.items() if t not in order]
    later, notes = _later(k, node, set(group.ops) if group else set())
    return Divergence(
        strategy=c.strategy,
        requested=c.requested,
        reason=c.reason,
        found=culprit is not None,
        culprit=culprit,
        culprit_inputs=inputs,
        later=tuple(later),
        final_outputs=tuple(k.accumulated[o] for o in g.graph_outputs if o in k.accumulated),
        tensors=tuple(tensors),
        isolated=tuple(k.isolated[t] for t in g.observed() if t in k.isolated),
        runs=tuple(_record(cmd, failing) for cmd, failing in k.runs),
        budget=c.budget,
        notes=tuple(k.notes + notes),
        extra={"estimated_runs": {s: (None if v == float("inf") else int(v)) for s, v in c.estimates.items()}},
    )


def _record(cmd: RunModel | RunCut, failing: tuple[str, ...]) -> RunRecord:
    if isinstance(cmd, RunModel):
        return RunRecord("model", cmd.purpose, probes=cmd.probes, failing=failing)
    return RunRecord("cut", cmd.purpose, isolate=cmd.isolate, prefix=cmd.prefix, failing=failing, groups=cmd.groups)


def _group_finding(k: Knowledge, group: OpGroup) -> OpFinding:
    g = k.graph
    types = "+".join(g.op(n).op_type for n in group.ops)
    rows = tuple(k.groups[group.ops].values())
    alone = all(k.iso_failed(g.op(n)) is False for n in group.ops)
    basis = ("the group fails in isolation, fed the reference's inputs"
             + ("; each op alone is exact or within tolerance" if alone else ""))
    return OpFinding(group.name, types, CULPRIT, group.outputs, _rows(k.accumulated, group.outputs), rows, basis,
                     group=group.ops)


def _rows(table: dict[str, TensorComparison], names: tuple[str, ...]) -> tuple[TensorComparison, ...]:
    return tuple(table[t] for t in names if t in table)


def _finding(k: Knowledge, op: OpNode, role: str, basis: str) -> OpFinding:
    return OpFinding(
        op.name, op.op_type, role, op.outputs,
        _rows(k.accumulated, op.outputs), _rows(k.isolated, op.outputs), basis,
    )


def _culprit_basis(k: Knowledge, op: OpNode | None) -> str:
    if op is None:
        return ""
    if k.iso_failed(op):
        ins = [k.accumulated[t] for t in op.inputs if t in k.accumulated]
        tail = ""
        if ins and not any(r.failed for r in ins):
            tail = "; its inputs are within tolerance on the target"
        return "fails in isolation, fed the reference's inputs" + tail
    return "first failing tensor; not run in isolation"


def _later(k: Knowledge, culprit: OpNode | None, members: set[str]) -> tuple[list[OpFinding], list[str]]:
    """Every other op with an error: its own (introduces) or carried (carrier); ``members``: the
    culprit group's ops (reported with it)."""
    g = k.graph
    down = {o.name for o in g.downstream(culprit.name)} if culprit else set()
    out: list[OpFinding] = []
    masked = []
    for o in g.ops:
        if (culprit is not None and o.name == culprit.name) or o.name in members:
            continue
        iso, acc = k.iso_failed(o), k.acc_failed(o)
        if iso:
            role, basis = INTRODUCES, "fails in isolation too: an error of its own"
        elif iso is False and acc:
            role, basis = CARRIER, "fine in isolation; its accumulated error fails"
        elif iso is False and acc is None and o.name in down:
            role, basis = CARRIER, ("fine in isolation; downstream of the culprit (accumulated error "
                                    "not measured: inferred)")
        elif iso is None and acc:
            role, basis = UNCLASSIFIED, "its accumulated error fails; not run in isolation"
        elif iso is None and acc is None and o.name in down:
            role, basis = UNCLASSIFIED, "downstream of the culprit; neither isolated nor measured"
        else:
            if acc is False and o.name in down:
                masked.append(o.name)
            continue
        if culprit is not None and g.position(o.name) < g.position(culprit.name) and role == CARRIER:
            basis += " (before the culprit: error from a tensor no probe sees)"
        out.append(_finding(k, o, role, basis))
    notes = []
    if masked:
        notes.append(f"{len(masked)} ops downstream of the culprit are within tolerance (the error is "
                     f"masked there): {', '.join(masked)}")
    return out, notes
