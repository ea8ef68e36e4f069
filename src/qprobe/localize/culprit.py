"""The repro cut of a localized op, from a finished ``Localization``, without new runs."""

from __future__ import annotations

import onnx_ir as ir

from qprobe.compare.cut import CutRun
from qprobe.errors import InputError
from qprobe.localize.divergence import Divergence
from qprobe.localize.runner import IsolatedArrays
from qprobe.model.extract import extract_subgraph


def culprit_cut(model: ir.Model, div: Divergence, arrays: dict[str, IsolatedArrays], op: str | None = None) -> CutRun:
    """The one-op cut of ``op`` (default: the culprit) with the arrays of its isolated run."""
    finding = div.culprit if op is None else next((f for f in (div.culprit, *div.later) if f and f.op == op), None)
    if finding is None:
        raise InputError("no op introduces an error, so there is nothing to bundle" if op is None
                         else f"op {op!r} is not among the localized ops")
    if finding.op not in arrays:
        raise InputError(f"{finding.op} has no isolated run on the target (its role: {finding.role}); "
                         "a bundle needs one: rerun with a target that runs models")
    a = arrays[finding.op]
    cut = extract_subgraph(model, list(a.inputs), list(a.expected))
    acc_in = div.culprit_inputs if finding is div.culprit else ()
    return CutRun(cut, a.inputs, a.expected, a.observed, finding.isolated, acc_in, finding.accumulated)
