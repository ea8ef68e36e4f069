"""The rewrite pass protocol: applies or says why not, edits a copy, records what it changed.

A pass (``RewritePass`` subclass, one per file) works on the op a localization named
(``RewriteContext.node``). ``apply(ctx)`` never touches ``ctx.model``: it reads the op's QDQ
site, asks ``refusal`` whether the pass applies (a sentence when it does not), edits a clone
in ``rewrite`` and returns a ``RewriteResult``: the new model, what it changed, added and
removed (node names; every other node and tensor keeps its name), the measures it took on
the data (clipping, for passes that narrow a range) and its cost (``cost.cost_of``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass, TopologicalSortPass

from qprobe.model.loader import clone_model, to_proto
from qprobe.rewrite.cost import Cost, cost_of
from qprobe.rewrite.edit import Namer
from qprobe.rewrite.envelope import RatioEnvelope
from qprobe.rewrite.site import Site, find_site

# float values of tensors on the data set (the reference's), for passes that measure clipping
Values = Callable[[Sequence[str]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class RewriteContext:
    model: ir.Model
    node: str
    envelope: RatioEnvelope  # where the op's class is exact on the target
    envelopes: Mapping[str, RatioEnvelope] = field(default_factory=dict)  # other classes (concat, ...)
    values: Values | None = None
    float_model: Path | None = None
    calibration: Path | None = None

    def envelope_for(self, op_class: str) -> RatioEnvelope | None:
        return self.envelope if self.envelope.op_class == op_class else self.envelopes.get(op_class)


@dataclass
class Edit:
    """What ``rewrite`` did to the clone (``model``: a different model it built instead)."""

    reason: str
    changed: list[str]
    measures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    off_accelerator: int = 0
    model: ir.Model | None = None


@dataclass(frozen=True)
class RewriteResult:
    pass_name: str
    model: ir.Model
    applied: bool
    reason: str
    changed_nodes: tuple[str, ...] = ()
    added_nodes: tuple[str, ...] = ()
    removed_nodes: tuple[str, ...] = ()
    cost: Cost = field(default_factory=Cost)
    measures: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    float_exact: bool = False  # the pass claims the rewritten model computes the same floats

    def to_json(self) -> dict[str, Any]:
        return {
            "pass": self.pass_name, "applied": self.applied, "reason": self.reason,
            "changed_nodes": list(self.changed_nodes), "added_nodes": list(self.added_nodes),
            "removed_nodes": list(self.removed_nodes), "cost": self.cost.to_json(),
            "measures": {k: (v if math.isfinite(v) else None) for k, v in self.measures.items()},
            "notes": list(self.notes), "float_exact": self.float_exact,
        }


class RewritePass:
    """Base class: subclasses set the class attributes and implement ``rewrite`` (and ``refusal``)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    motivating: ClassVar[bool] = False  # one of the four workarounds tried by hand on the board
    float_exact: ClassVar[bool] = False
    int8: ClassVar[bool] = True  # the op stays an int8 op (False: it leaves the int8 accelerator)

    def refusal(self, ctx: RewriteContext, site: Site) -> str | None:
        """Why the pass does not apply to ``site`` (None: it applies)."""
        return None

    def rewrite(self, ctx: RewriteContext, model: ir.Model, site: Site, names: Namer) -> Edit | str:
        raise NotImplementedError

    def applies(self, ctx: RewriteContext) -> tuple[bool, str]:
        site = find_site(ctx.model, ctx.node)
        why = site if isinstance(site, str) else self.refusal(ctx, site)
        return (why is None), (why or "applies")

    def apply(self, ctx: RewriteContext) -> RewriteResult:
        site = find_site(ctx.model, ctx.node)
        why = site if isinstance(site, str) else self.refusal(ctx, site)
        if why is not None:
            return RewriteResult(self.name, ctx.model, False, why)
        model = clone_model(ctx.model)
        mine = find_site(model, ctx.node)
        assert not isinstance(mine, str)
        edit = self.rewrite(ctx, model, mine, Namer(model))
        if isinstance(edit, str):
            return RewriteResult(self.name, ctx.model, False, edit)
        out = finalize(edit.model or model)
        before, after = {n.name for n in ctx.model.graph}, {n.name for n in out.graph}
        return RewriteResult(
            self.name, out, True, edit.reason, tuple(dict.fromkeys(c for c in edit.changed if c in after)),
            tuple(n.name or "" for n in out.graph if n.name not in before),
            tuple(n.name or "" for n in ctx.model.graph if n.name not in after),
            cost_of(ctx.model, out, edit.off_accelerator), dict(edit.measures), tuple(edit.notes), self.float_exact,
        )


def finalize(model: ir.Model) -> ir.Model:
    """Topological order, dead nodes and initializers removed, and a model the ONNX checker accepts."""
    model = TopologicalSortPass()(model).model
    model = RemoveUnusedNodesPass()(model).model
    try:
        onnx.checker.check_model(to_proto(model))
    except onnx.checker.ValidationError as e:  # a pass built an invalid graph: a bug, not a user error
        raise AssertionError(f"rewrite produced an invalid model: {e}") from e
    return model
