"""Mergeable accumulators of a comparison: per tensor, per deployed output, per probe effect.

``ComparisonAccumulator.add`` takes one batch of Traces (reference and target, probed,
and optionally the unprobed runs of each); ``merge`` adds another accumulator's disjoint
samples, so batches and shards can be accumulated anywhere and combined in any grouping
(associative: integer counts exactly, float sums up to summation order). Nothing here
runs a backend or knows a policy: ``compare.compare`` turns the result into a Comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from qprobe.errors import BackendError
from qprobe.metrics import LsbAccumulator, LsbMetrics, StAccumulator, StMetrics, looks_like_probabilities
from qprobe.metrics.codes import CodePairs, code_pairs_apply
from qprobe.tensors import QuantParams, TensorRecord, Trace


@dataclass
class TensorAccumulator:
    """ST and LSB metrics of one tensor, reference against target, over the samples seen.

    ``classifier``: True/False forces accuracy on/off; None (outputs only) reports it when
    every reference batch "may represent probabilities", as ``stedgeai validate`` does.
    """

    name: str
    quant: QuantParams | None
    classifier: bool | None = False
    st: StAccumulator = field(init=False)
    lsb: LsbAccumulator | None = field(init=False)
    prob_like: bool = True
    pairs: CodePairs | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.st = StAccumulator(classifier=self.classifier is not False)
        self.lsb = LsbAccumulator(self.quant) if self.quant is not None else None

    def add(self, ref: np.ndarray, tgt: np.ndarray) -> None:
        if ref.size != tgt.size:
            raise BackendError(
                f"tensor {self.name!r}: reference has {ref.size} elements {ref.shape}, "
                f"target {tgt.size} {tgt.shape}; the target returned a different shape"
            )
        tgt = tgt.reshape(ref.shape)
        q = self.quant
        if self.classifier is False and q is not None and code_pairs_apply(q, ref, tgt):
            # 8-bit codes on both sides: one integer pass (metrics.codes), no dequantized copies
            if self.pairs is None:
                self.pairs = CodePairs(q)
            self.pairs.add(ref, tgt)
            return
        ref_codes, tgt_codes = np.issubdtype(ref.dtype, np.integer), np.issubdtype(tgt.dtype, np.integer)
        # ST dequantizes both sides with the reference's params, in float32
        r_real = q.dequantize_f32(ref) if q is not None and ref_codes else ref
        t_real = q.dequantize_f32(tgt) if q is not None and tgt_codes else tgt
        if self.classifier is None:
            self.prob_like = self.prob_like and looks_like_probabilities(r_real)
        self.st.add(r_real, t_real)
        if self.lsb is not None:
            self.lsb.add(ref, tgt) if ref_codes and tgt_codes else self.lsb.add(r_real, t_real)

    def merge(self, other: TensorAccumulator) -> TensorAccumulator:
        self.st.merge(other.st)
        if self.lsb is not None and other.lsb is not None:
            self.lsb.merge(other.lsb)
        self.prob_like = self.prob_like and other.prob_like
        if other.pairs is not None:
            self.pairs = other.pairs if self.pairs is None else self.pairs.merge(other.pairs)
        return self

    def _combined(self) -> tuple[StAccumulator, LsbAccumulator | None]:
        """The element-wise accumulators with the counted code pairs added (new objects)."""
        if self.pairs is None:
            return self.st, self.lsb
        st = self.pairs.st(self.st.ddof).merge(self.st)
        lsb = self.pairs.lsb()
        return st, lsb.merge(self.lsb) if self.lsb is not None else lsb

    def result(self) -> tuple[StMetrics, LsbMetrics | None]:
        st_acc, lsb_acc = self._combined()
        st = st_acc.result()
        if self.classifier is None and not self.prob_like and st.acc is not None:
            st = StMetrics(st.n, st.rmse, st.mae, st.l2r, st.mean, st.std, st.nse, st.cos, None)
        return st, lsb_acc.result() if lsb_acc is not None else None


class ComparisonAccumulator:
    """Everything a comparison accumulates, mergeable across batches and shards.

    ``tensors``: reference vs target on every planned tensor of the probed runs.
    ``deployed``: reference vs target on the final outputs of the *unprobed* runs (each side's
    unprobed run when it has one, else its probed run); empty when no unprobed run was made.
    ``effects[role]``: per final output, that backend's unprobed run (as reference) against its
    probed run: how much exposing tensors changed what it computes.
    """

    def __init__(self, tensors: Sequence[str], outputs: Sequence[str], classifier: bool | None = None) -> None:
        self.names = tuple(tensors)
        self.outputs = tuple(o for o in outputs if o in set(tensors))
        self.classifier = classifier
        self.tensors: dict[str, TensorAccumulator] = {}
        self.deployed: dict[str, TensorAccumulator] = {}
        self.effects: dict[str, dict[str, TensorAccumulator]] = {}
        self.samples = 0

    def _acc(self, store: dict[str, TensorAccumulator], name: str, quant: QuantParams | None,
             classifier: bool | None) -> TensorAccumulator:
        if name not in store:
            store[name] = TensorAccumulator(name, quant, classifier)
        return store[name]

    def _classifier(self, name: str) -> bool | None:
        return self.classifier if name in self.outputs else False

    def add(self, ref: Trace, tgt: Trace, ref_plain: Trace | None = None, tgt_plain: Trace | None = None) -> None:
        """One batch: the probed Traces and, when made, each backend's unprobed Trace."""
        for name in self.names:
            r, t = _record(ref, name), _record(tgt, name)
            self._acc(self.tensors, name, r.quant, self._classifier(name)).add(np.asarray(r.data), np.asarray(t.data))
        if ref_plain is not None or tgt_plain is not None:
            for name in self.outputs:
                r, t = _record(ref_plain or ref, name), _record(tgt_plain or tgt, name)
                self._acc(self.deployed, name, r.quant, self._classifier(name)).add(
                    np.asarray(r.data), np.asarray(t.data))
        for role, plain, probed in (("ref", ref_plain, ref), ("target", tgt_plain, tgt)):
            if plain is None:
                continue
            store = self.effects.setdefault(role, {})
            for name in self.outputs:
                p = _record(plain, name)
                self._acc(store, name, p.quant, False).add(np.asarray(p.data), np.asarray(_record(probed, name).data))
        self.samples += ref.num_samples

    def merge(self, other: ComparisonAccumulator) -> ComparisonAccumulator:
        """Add ``other``'s samples (accumulated over disjoint samples of the same plan); ``other``
        is consumed (its accumulators may be taken over)."""
        if other.names != self.names:
            raise ValueError("cannot merge comparisons of different probe plans")
        _merge(self.tensors, other.tensors)
        _merge(self.deployed, other.deployed)
        for role, store in other.effects.items():
            _merge(self.effects.setdefault(role, {}), store)
        self.samples += other.samples
        return self


    def move_code_pairs(self, into: ComparisonAccumulator) -> None:
        """Move this accumulator's code-pair counts into ``into``'s (same plan). The counts are exact
        integers, so where they are summed changes no result: a shard keeps one 256 x 256 table per
        tensor instead of one per batch, and merging in sample order stays bit-equal to serial."""
        stores = [(self.tensors, into.tensors), (self.deployed, into.deployed)]
        stores += [(mine, into.effects.setdefault(role, {})) for role, mine in self.effects.items()]
        for mine, theirs in stores:
            for name, acc in mine.items():
                target = theirs.get(name)
                if acc.pairs is None or target is None:
                    continue
                target.pairs = acc.pairs if target.pairs is None else target.pairs.merge(acc.pairs)
                acc.pairs = None


def _merge(into: dict[str, TensorAccumulator], other: Mapping[str, TensorAccumulator]) -> None:
    for name, acc in other.items():
        if name in into:
            into[name].merge(acc)
        else:
            into[name] = acc


def _record(trace: Trace, name: str) -> TensorRecord:
    rec = trace.records.get(name)
    if rec is None:
        raise BackendError(f"{trace.backend} returned no tensor {name!r} (samples from {trace.first_sample})")
    return rec
