"""The search: a coarse pass over the whole space, then the full data for the survivors.

Coarse: every candidate on each observation set's subsample; candidates with identical
coarse predictions form a group (the simplest ones, fewest knobs changed from their
base, stand for it). The groups within ``margin`` of the best coarse exact-match share
survive (at least ``min_groups``, at most ``max_groups``); their members are evaluated on all observations and
merged again by identical full predictions. Ranking: exact-match share, then mean |delta|
LSB, then simplicity.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from qprobe.backends.engine.kernels.base import Ungroupable
from qprobe.errors import QprobeError
from qprobe.explain.evaluate import ObservationSet, Score
from qprobe.explain.space import Candidate


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: Score
    equivalents: int  # candidates with the same predictions (on the coarse sample)
    members: tuple[Candidate, ...] = ()  # those candidates (for a later re-ranking on more data)


@dataclass(frozen=True)
class SearchStats:
    candidates: int
    coarse_evaluations: int
    full_evaluations: int
    seconds: float

    @property
    def per_second(self) -> float:
        return (self.coarse_evaluations + self.full_evaluations) / self.seconds if self.seconds > 0 else 0.0


def _key(score: Score, cand: Candidate) -> tuple[float, float, int]:
    return (-score.exact, score.mean_abs, cand.complexity)


def _coarse(cands: Sequence[Candidate], sets: Sequence[ObservationSet]) -> dict[bytes, list[tuple[Score, Candidate]]]:
    groups: dict[bytes, list[tuple[Score, Candidate]]] = {}
    for c in cands:
        try:
            parts = [s.coarse(c) for s in sets]
        except (Ungroupable, QprobeError, ValueError):
            continue  # the kernel cannot express this combination for this op
        sig = b"|".join(p[1] for p in parts)
        groups.setdefault(sig, []).append((Score.combine([p[0] for p in parts]), c))
    return groups


def search(
    cands: Sequence[Candidate], sets: Sequence[ObservationSet], *, margin: float = 0.02, max_groups: int = 48,
    min_groups: int = 12, per_group: int = 6, deep_groups: int = 3, deep_per_group: int = 128,
) -> tuple[list[Ranked], SearchStats]:
    t0 = time.perf_counter()
    groups = _coarse(cands, sets)
    heads = sorted(((min(g, key=lambda sc: _key(*sc)), g) for g in groups.values()), key=lambda hg: _key(*hg[0]))
    if not heads:
        return [], SearchStats(len(cands), len(cands), 0, time.perf_counter() - t0)
    best = heads[0][0][0].exact
    close = sum(1 for head, _g in heads if head[0].exact >= best - margin)
    survivors = [g for _head, g in heads[: min(max(close, min_groups), max_groups)]]
    full: dict[bytes, list[tuple[Score, Candidate]]] = {}
    pool: dict[bytes, list[Candidate]] = {}
    evaluated = 0
    for rank, g in enumerate(survivors):
        depth = deep_per_group if rank < deep_groups else per_group
        for _s, c in sorted(g, key=lambda sc: sc[1].complexity)[:depth]:
            parts = [s.full(c) for s in sets]
            evaluated += 1
            sig = b"|".join(p[1] for p in parts)
            if sig not in full:
                pool[sig] = [m for _m, m in g]
            full.setdefault(sig, []).append((Score.combine([p[0] for p in parts]), c))
    ranked = [Ranked(c, s, len(pool[sig]), tuple(pool[sig])) for sig, members in full.items()
              for s, c in [min(members, key=lambda sc: _key(*sc))]]
    ranked.sort(key=lambda r: _key(r.score, r.candidate))
    return ranked, SearchStats(len(cands), len(cands), evaluated, time.perf_counter() - t0)
