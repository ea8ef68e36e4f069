"""Running one engine program on several cores: the batch split into chunks, one thread each.

Samples are independent in inference, so ``f(concat(a, b)) == concat(f(a), f(b))`` bit for
bit, and the engine's numpy kernels release the GIL in their inner loops (ufuncs, BLAS,
copies): a batch cut into ``k`` chunks along axis 0 and run on ``k`` threads gives the same
codes in about ``1/k`` of the time. ``split_blocker`` says why a model cannot be split (a
tensor whose axis 0 is not the sample axis, an op that mixes samples), read statically from
the graph. ``SplitRunner`` chooses per batch size between the whole batch, the split, and
the whole batch with numpy's BLAS on every core for the call (the better way for GEMM-bound
models), by checking each way's first result against the whole batch's and timing them on
the first batches of that size.

The thread count is ``qprobe.threads.settings().engine`` (the cores); chunks hold at least
``MIN_CHUNK`` samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import onnx_ir as ir

from qprobe.backends.engine.graph import GNode, GraphView
from qprobe.threads import BlasThreads

MIN_CHUNK = 8
TRIALS = 3  # warm timed runs each way per batch size
MARGIN = 0.9  # the split must take at most this share of the whole run's time

# ops whose axis attribute (default in the tuple) must not name the sample axis
_AXIS_OPS = {"Concat": 0, "Split": 0, "Gather": 0, "GatherElements": 0, "Softmax": 1, "LogSoftmax": 1,
             "Hardmax": 1, "ArgMax": 0, "ArgMin": 0, "TopK": -1, "CumSum": None, "Flatten": 1,
             "QLinearConcat": 0, "QLinearSoftmax": 1, "LpNormalization": -1, "Compress": None}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
_MIXING = {"DynamicQuantizeLinear", "Scan", "Loop", "If", "NonZero", "Unique", "RandomNormalLike",
           "RandomUniformLike", "Multinomial", "ConstantOfShape", "Range"}
_SHAPE_OF = {"Shape", "Size"}


def split_blocker(view: GraphView, model: ir.Model) -> str | None:
    """Why the program cannot run split along axis 0, or None when it can."""
    if view.fixed_batch_one:
        return "the model's batch is fixed at 1"
    for value in model.graph.inputs:
        shape = value.shape
        if shape is None or len(shape) == 0:
            return f"input {value.name!r} has no sample axis"
        if isinstance(shape[0], int):
            return f"input {value.name!r} has a fixed batch of {shape[0]}"
    batched = set(view.inputs)
    for node in view.nodes:
        if not any(n in batched for n in node.inputs if n):
            continue
        reason = _node_blocker(node, view, batched)
        if reason:
            return f"node {node.name!r} ({node.op_type}) {reason}"
        if node.op_type not in _SHAPE_OF:
            batched.update(node.outputs)
    return None


def _axes(node: GNode, view: GraphView) -> list[int] | None:
    """A reduction's axes (attribute or constant input); None when it reduces every axis."""
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    if len(node.inputs) > 1 and node.inputs[1]:
        const = view.consts.get(node.inputs[1])
        return None if const is None else [int(a) for a in np.asarray(const).reshape(-1)]
    return None


def _node_blocker(node: GNode, view: GraphView, batched: set[str]) -> str | None:
    op, attrs = node.op_type, node.attrs
    if op in _MIXING:
        return "mixes the samples of a batch"
    default = _AXIS_OPS.get(op)
    if op in _AXIS_OPS and int(attrs.get("axis", 0 if default is None else default)) == 0:
        return "works along the sample axis"
    if op in _REDUCE:
        axes = _axes(node, view)
        if axes is None or 0 in axes:
            return "reduces over the sample axis"
    if op == "Transpose" and list(attrs.get("perm", [1, 0]))[:1] != [0]:
        return "moves the sample axis"
    if op == "Einsum" and not _einsum_keeps_samples(str(attrs.get("equation", "")), node, batched):
        return "mixes the samples of a batch (its equation)"
    if op == "Gemm" and int(attrs.get("transA", 0)) and node.inputs[0] in batched:
        return "reads its batched input transposed"
    if op in ("Reshape", "Expand", "Tile", "Slice", "Pad", "Resize", "Squeeze", "Unsqueeze"):
        return _shape_input_blocker(node, view)
    return None


def _einsum_keeps_samples(equation: str, node: GNode, batched: set[str]) -> bool:
    """Every batched operand's first subscript, and the output's, is the same letter (or ``...``)."""
    eq = equation.replace(" ", "")
    if "->" not in eq:
        return False
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    firsts = {t[:3] if t.startswith("...") else t[:1]
              for t, name in zip(terms, node.inputs, strict=False) if name in batched}
    if len(firsts) != 1:
        return False
    first = firsts.pop()
    return bool(first) and out.startswith(first) and all(
        first not in t for t, name in zip(terms, node.inputs, strict=False) if name not in batched)


def _shape_input_blocker(node: GNode, view: GraphView) -> str | None:
    """Reshape/Expand/Tile/Slice/Pad/Resize/Squeeze/Unsqueeze: the constant operands must leave axis 0 alone."""
    op = node.op_type

    def const(i: int) -> np.ndarray | None:
        name = node.inputs[i] if len(node.inputs) > i else ""
        return np.asarray(view.consts[name]).reshape(-1) if name in view.consts else None

    if op == "Reshape" and (shape := const(1)) is not None and shape.size and int(shape[0]) not in (0, -1):
        return "reshapes the sample axis to a fixed size"
    if op == "Tile" and (reps := const(1)) is not None and reps.size and int(reps[0]) != 1:
        return "tiles the sample axis"
    if op == "Slice":
        sliced = const(3)
        if (sliced is None and len(node.inputs) <= 3) or (sliced is not None and 0 in sliced.tolist()):
            return "slices the sample axis"
    if op == "Pad" and (pads := const(1)) is not None and pads.size >= 2 and (pads[0] or pads[pads.size // 2]):
        return "pads the sample axis"
    if op == "Resize":
        scales = const(2)
        if len(node.inputs) > 3 and node.inputs[3]:
            return "resizes to fixed sizes"
        if scales is not None and scales.size and float(scales[0]) != 1.0:
            return "resizes the sample axis"
    if op in ("Squeeze", "Unsqueeze"):
        c = const(1)
        axes = [int(a) for a in node.attrs["axes"]] if "axes" in node.attrs else (
            None if c is None else [int(a) for a in c])
        if axes is None or 0 in axes:
            return "squeezes or inserts axis 0"
    return None


_T = TypeVar("_T")
Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


WHOLE, SPLIT, WIDE = "whole", "split", "wide-blas"  # the ways a batch can run (``SplitRunner.decided``)


class SplitRunner:
    """Runs a program on a batch whichever way is fastest for its size: whole, cut into
    ``threads`` chunks (``SPLIT``), or whole with numpy's BLAS on ``threads`` threads for the
    call (``WIDE``, offered when a ``BlasThreads`` setter is given).

    A split pays where many numpy ops each release the GIL long enough (the MobileNet-like
    model at batch 64: 0.77x the whole run's time); a GEMM-bound model gains little from it,
    every op's GIL hand-over costs a wake-up of the other thread (35-55 us on this VM), but
    gains from BLAS's own threads, which split each large GEMM (the TCN at batch 64: 3.5-3.8 ms
    against 4.5-6 ms whole). BLAS is set back to its base count right after the call; its
    workers then spin for up to ~0.1 s of CPU before sleeping, yielding to runnable threads.

    The first run of each way is checked against the whole batch's (run once more for it); a
    mismatch turns that way off, so a model the static rules let through by mistake is never
    answered wrongly. Those runs are not timed for the decision: each is the first at its
    shape, which builds the kernels' plans (measured on the TCN at batch 64: twice the warm
    time). The next batches of each size are run each way in turn (``TRIALS`` each) and
    timed; that size then runs the fastest way, and another way than whole only when its best
    time is at most ``MARGIN`` of the whole run's (timings on a small VM vary by 2x between
    calls: a decision from a few close calls is a coin toss, and a way that does not clearly
    win costs the cores that the other pools need).
    """

    def __init__(self, run: Runner, inputs: Sequence[str], threads: int, blas: BlasThreads | None = None,
                 split_blocker: str | None = None) -> None:
        self._run, self._inputs, self.threads = run, list(inputs), max(1, threads)
        self._blas = blas if blas is not None and blas.base < self.threads else None
        self._pool: ThreadPoolExecutor | None = None
        self.decided: dict[int, str] = {}  # batch size -> the way it runs
        self._trials: dict[int, dict[str, list[float]]] = {}  # batch size -> run times per way
        self._checked: set[str] = set()
        self.disabled: str | None = split_blocker  # why the split is off
        self.wide_off: str | None = None if self._blas is not None else "no BLAS thread setter"

    def _batch(self, feeds: Mapping[str, np.ndarray]) -> int:
        if self.threads < 2 or not self._inputs:
            return 0
        n = {int(np.shape(feeds[i])[0]) if np.ndim(feeds[i]) else -1 for i in self._inputs}
        return n.pop() if len(n) == 1 else 0

    def _ways(self) -> list[str]:
        return [w for w, off in ((SPLIT, self.disabled), (WIDE, self.wide_off)) if off is None]

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = self._batch(feeds)
        k = min(self.threads, batch // MIN_CHUNK)
        ways = self._ways()
        decision = self._known(batch)
        if k < 2 or not ways or decision == WHOLE:
            return self._run(feeds)
        if decision is not None and decision in ways:
            out = self._by(decision, feeds, batch, k)
            return out if out is not None else self._run(feeds)
        times = self._trials.setdefault(batch, {})
        early = [w for w in ways if w != WIDE and w not in self._checked]  # checked before any timing: the
        way = early[0] if early else _next_trial(times, [WHOLE, *ways])  # pair also builds the kernels' plans
        if way != WHOLE and way not in self._checked:  # a way's first run is checked against the whole batch's
            whole = self._run(feeds)
            got = self._by(way, feeds, batch, k)
            self._checked.add(way)
            if got is None or any(got[n].dtype != w.dtype or not np.array_equal(got[n], w, equal_nan=True)
                                  for n, w in whole.items()):
                self._turn_off(way, f"the {way} run did not give the whole batch's result")
            return whole
        out, t = _timed(lambda f: self._by(way, f, batch, k), feeds)
        times.setdefault(way, []).append(t)
        if all(len(times.get(w, ())) >= TRIALS for w in (WHOLE, *ways)):
            best = min(ways, key=lambda w: min(times[w]))
            self.decided[batch] = best if min(times[best]) <= MARGIN * min(times[WHOLE]) else WHOLE
        return out if out is not None else self._run(feeds)

    def _turn_off(self, way: str, reason: str) -> None:
        if way == SPLIT:
            self.disabled = reason
        else:
            self.wide_off = reason

    def _known(self, batch: int) -> str | None:
        """The way for this size: measured, or implied (a larger size ran whole; else the way
        of the largest smaller size that did not run whole)."""
        if batch in self.decided:
            return self.decided[batch]
        if any(way == WHOLE and b >= batch for b, way in self.decided.items()):
            return WHOLE
        below = [(b, way) for b, way in self.decided.items() if way != WHOLE and b <= batch]
        return max(below)[1] if below else None

    def _by(self, way: str, feeds: Mapping[str, np.ndarray], batch: int, k: int) -> dict[str, np.ndarray] | None:
        if way == SPLIT:
            return self._split(feeds, batch, k)
        if way == WIDE and self._blas is not None:
            self._blas.set(self.threads)
            try:
                return self._run(feeds)
            finally:
                self._blas.set(self._blas.base)
        return self._run(feeds)

    def _split(self, feeds: Mapping[str, np.ndarray], batch: int, k: int) -> dict[str, np.ndarray] | None:
        bounds = np.linspace(0, batch, k + 1).astype(int)
        parts = [{n: (np.asarray(v)[lo:hi] if n in self._inputs else v) for n, v in feeds.items()}
                 for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="qprobe-engine")
        results = list(self._pool.map(self._run, parts))
        merged = {name: _join([r[name] for r in results]) for name in results[0]}
        if any(v is None for v in merged.values()):
            self.disabled = "an output has no sample axis"
            return None
        return {n: v for n, v in merged.items() if v is not None}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _next_trial(times: Mapping[str, Sequence[float]], ways: Sequence[str]) -> str:
    """The way to time next: whole and split in turn first, wide-BLAS after them (its BLAS
    workers spin for a while after each run and would slow the runs timed right after)."""
    short = [w for w in ways if len(times.get(w, ())) < TRIALS]
    first = [w for w in short if w != WIDE] or short or list(ways)
    return min(first, key=lambda w: len(times.get(w, ())))


def _timed(fn: Callable[[Mapping[str, np.ndarray]], _T], feeds: Mapping[str, np.ndarray]) -> tuple[_T, float]:
    t0 = time.perf_counter()
    out = fn(feeds)
    return out, time.perf_counter() - t0


def _join(parts: list[np.ndarray]) -> np.ndarray | None:
    """The chunks' outputs concatenated on axis 0, or None when they are not batch-indexed."""
    arrays = [np.asarray(p) for p in parts]
    if any(a.ndim == 0 for a in arrays) or len({a.shape[1:] for a in arrays}) != 1:
        return None
    return np.concatenate(arrays, axis=0)
