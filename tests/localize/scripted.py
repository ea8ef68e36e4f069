"""A scripted target for the localization state machine: no model, no backend.

``ScriptedTarget`` answers each command from a ground truth: the set of ops that
introduce an error (``defects``). An op fails in isolation iff it is a defect; a tensor
fails accumulated iff a defect is the op itself or upstream of it (error propagates),
unless the op is in ``masks`` (the error vanishes there and stays vanished). It checks
that no command asks for more outputs than the target allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from qprobe.compare.result import TensorComparison
from qprobe.localize import OpGraph, OpNode, Outcome, RunCut, RunModel, TargetTraits
from qprobe.metrics import StMetrics


def row(name: str, failed: bool, producer: str = "", op_type: str = "") -> TensorComparison:
    cos = 0.5 if failed else 1.0
    st = StMetrics(n=10, rmse=1.0 if failed else 0.0, mae=0.0, l2r=0.0, mean=0.0, std=0.0, nse=1.0, cos=cos)
    verdict, reason = ("fail", "cos 0.5000 < 0.99") if failed else ("exact", "identical values")
    return TensorComparison(name, producer, op_type, None, st, None, verdict, reason)


def chain(n: int) -> OpGraph:
    """op0 -> op1 -> ... -> op{n-1}; op k reads t{k-1} (op0 reads the graph input x)."""
    ops = [OpNode(f"op{k}", "Conv", ("x",) if k == 0 else (f"t{k - 1}",), (f"t{k}",),
                  frozenset(f"op{j}" for j in range(k))) for k in range(n)]
    return OpGraph(tuple(ops), ("x",), {"y": f"op{n - 1}"})


def dag(parents: list[list[int]]) -> OpGraph:
    """Op k reads the outputs of ops ``parents[k]`` (or x when empty); the last op feeds y."""
    ups: list[set[str]] = []
    ops = []
    for k, ps in enumerate(parents):
        up = set().union(*[ups[p] | {f"op{p}"} for p in ps]) if ps else set()
        ups.append(up)
        ins = tuple(f"t{p}" for p in ps) or ("x",)
        ops.append(OpNode(f"op{k}", "Add", ins, (f"t{k}",), frozenset(up)))
    return OpGraph(tuple(ops), ("x",), {"y": f"op{len(parents) - 1}"})


class ScriptedTarget:
    def __init__(self, graph: OpGraph, defects: Iterable[str], traits: TargetTraits | None = None,
                 masks: Iterable[str] = (), probe_changes: bool = False) -> None:
        self.graph, self.defects, self.masks = graph, set(defects), set(masks)
        self.traits = traits or TargetTraits()
        self.probe_changes = probe_changes
        self.commands: list[RunModel | RunCut] = []

    def acc_fails(self, op: OpNode) -> bool:
        if op.name in self.masks:
            return False
        parents = [p for p in map(self.graph.producer_of, op.inputs) if p is not None]
        return op.name in self.defects or any(self.acc_fails(p) for p in parents)

    def __call__(self, cmd: RunModel | RunCut) -> Outcome:
        self.commands.append(cmd)
        limit = self.traits.outputs_per_run
        assert cmd.num_outputs(self.graph) <= limit or math.isinf(limit), f"{cmd} exceeds {limit} outputs"
        if isinstance(cmd, RunModel):
            return self._model(cmd)
        iso = {t: row(t, o.name in self.defects, o.name) for o in map(self.graph.op, cmd.isolate) for t in o.outputs}
        acc = {t: self._acc_row(t) for t in cmd.prefix}
        return Outcome(accumulated=acc, isolated=iso)

    def _acc_row(self, t: str) -> TensorComparison:
        op = self.graph.producer_of(t)
        assert op is not None
        return row(t, self.acc_fails(op), op.name)

    def _model(self, cmd: RunModel) -> Outcome:
        out = self.graph.op(self.graph.output_ops["y"])
        final_fails = self.acc_fails(out)
        probed = bool(cmd.probes)
        if probed and self.probe_changes:  # probing "fixes" the target: nothing fails
            rows = {t: row(t, False) for t in cmd.probes} | {"y": row("y", False)}
            return Outcome(accumulated=rows, changed_outputs=("y",) if final_fails else ())
        rows = {t: self._acc_row(t) for t in cmd.probes} | {"y": row("y", final_fails, out.name)}
        return Outcome(accumulated=rows, changed_outputs=() if probed else None)
