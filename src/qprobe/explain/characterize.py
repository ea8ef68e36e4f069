"""Characterization runs: map the target's response to an op class over its parameter, adaptively.

Run 1 sweeps the parameter over [1/16, 16], dense around powers of two, for each operand
and for extreme zero points (eltwise, concat), or, for conv, the requantization multiplier
from 2**-20 to 4 with small accumulators and the accumulator magnitude up to about 2**18
with multipliers that keep the outputs in range (two envelopes). Every later run (within
``budget`` target runs) measures where the knowledge is thinnest: between neighbouring
measured values on either side of a safe/unsafe change (bisection with many points per
run), and where the top hypotheses disagree most (their predictions on candidate configs,
built with the engine). It stops early when nothing is left to resolve. Each measured
subgraph also becomes an observation set, so that the hypotheses are re-ranked on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qprobe.backends.base import Backend
from qprobe.explain.envelope import Envelope, EnvelopePoint, build_envelope, by_value
from qprobe.explain.evaluate import AccSet, ObservationSet, PairSet, UnarySet, pair_table
from qprobe.explain.evidence import channel_fit, concat_fit, eltwise_fit, exact_real
from qprobe.explain.observe import Observation
from qprobe.explain.opspec import GroupSpec, group_specs
from qprobe.explain.probes import (
    CONV_OUT,
    ProbeConfig,
    concat_probe,
    conv_probe,
    eltwise_probe,
    synthetic_spec,
)
from qprobe.explain.runs import run_model
from qprobe.explain.space import Candidate

PER_BRACKET = 12
RESOLVED = 2e-5  # relative width below which a safe/unsafe change is located well enough
MAX_DISAGREEMENT_PROBES = 8
MIN_DISAGREEMENT = 0.01  # share of input pairs on which the top hypotheses must differ to be worth a probe
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Characterization:
    envelopes: tuple[Envelope, ...]  # the main parameter's first
    sets: tuple[ObservationSet, ...]
    runs: int
    notes: tuple[str, ...]


def _powers_sweep(lo: int, hi: int) -> list[float]:
    near = (0.75, 0.9, 0.99, 0.999, 1.0, 1.001, 1.01, 1.1)
    return sorted({2.0**k * f for k in range(lo, hi) for f in near if 2.0**lo <= 2.0**k * f <= 2.0**hi} | {2.0**hi})


def initial_configs(op_class: str) -> list[ProbeConfig]:
    if op_class == "conv":
        return [ProbeConfig(2.0**k) for k in range(-20, 3, 2)] + \
            [ProbeConfig(2000.0 + 16000.0 * j, kind="accumulator", step=2000.0) for j in range(17)]
    main = [ProbeConfig(r) for r in _powers_sweep(-4, 4)]
    zps = [ProbeConfig(r, 0, z) for r in (0.5, 1.5, 3.0) for z
           in ((-128, 0, 0), (127, 0, 0), (0, 0, -128), (0, 0, 127))]
    other = [] if op_class == "concat" else [ProbeConfig(r, 1) for r in (0.5, 1.5, 1.99, 2.0, 3.0, 8.0)]
    return main + zps + other


def _observation(name: str, inputs: dict[str, np.ndarray], e: np.ndarray, o: np.ndarray) -> Observation:
    return Observation(name, "", inputs, e, o, np.arange(e.shape[0]), e.shape[0], "characterization")


def _point(c: ProbeConfig, d: np.ndarray, effective: float | None, expected: float) -> EnvelopePoint:
    return EnvelopePoint(c.actual_ratio(), expected, effective, float(np.mean(d == 0)), float(np.mean(d)),
                         int(np.abs(d).max(initial=0)), c.zero_points)


def _measure_operands(op_type: str, c: ProbeConfig, gs: GroupSpec, feeds: dict[str, np.ndarray], e: np.ndarray,
                      o: np.ndarray, rng: np.random.Generator) -> tuple[list[EnvelopePoint], ObservationSet]:
    obs = _observation(gs.spec.node, feeds, e, o)
    d = e.astype(np.int64) - o.astype(np.int64)
    if op_type == "Concat":
        fit = concat_fit(obs, gs)["operands"][0]
        return [_point(c, d, fit["effective"], fit["expected"])], UnarySet(gs.spec.node, gs, [feeds["x"]] * 2, o)
    fit = eltwise_fit(obs, gs)["operands"][c.swept]
    return [_point(c, d, fit["effective"], fit["expected"])], PairSet(gs.spec.node, gs, feeds["a"], feeds["b"], o,
                                                                       rng, coarse_n=256, full_n=4096)


def _measure_conv(c: ProbeConfig, gs: GroupSpec, feeds: dict[str, np.ndarray], e: np.ndarray, o: np.ndarray,
                  rng: np.random.Generator) -> tuple[list[EnvelopePoint], ObservationSet]:
    """One point per channel: its multiplier (multiplier sweep) or its largest |accumulator|."""
    obs = _observation(gs.spec.node, feeds, e, o)
    found = exact_real(obs, gs)
    gains = channel_fit(obs, gs, found[0])["gains"] if found is not None else [None] * CONV_OUT
    inputs = [feeds["x"] if op.const is None else op.const for op in gs.spec.inputs]
    acc = AccSet(gs.spec.node, gs, inputs, o, rng)
    points = []
    for k in range(CONV_OUT):
        d = e[:, k].astype(np.int64) - o[:, k].astype(np.int64)
        m = float(gs.spec.q(0).s) * float(gs.spec.q(1).scale[k]) / float(gs.spec.out_q.s)
        value = m if c.kind == "multiplier" else float(np.abs(acc.acc[:, k]).max())
        points.append(EnvelopePoint(value, 1.0, gains[k], float(np.mean(d == 0)), float(np.mean(d)),
                                    int(np.abs(d).max(initial=0)), c.zero_points))
    return points, acc


def measure(op_class: str, op_type: str, configs: Sequence[ProbeConfig], ref: Backend, target: Backend,
            rng: np.random.Generator) -> tuple[dict[str, list[EnvelopePoint]], list[ObservationSet]]:
    """One target run (and one reference run) of a probe model holding every config; points by parameter."""
    if op_class == "conv":
        model, inputs = conv_probe(configs)
    elif op_class == "concat":
        model, inputs = concat_probe(configs)
    else:
        model, inputs = eltwise_probe(op_type, configs)
    specs = group_specs(model)
    expected, observed = run_model(ref, model, inputs), run_model(target, model, inputs)
    points: dict[str, list[EnvelopePoint]] = {}
    sets: list[ObservationSet] = []
    for i, c in enumerate(configs):
        e, o, gs = expected[f"probe_{i}"], observed[f"probe_{i}"], specs[f"probe_{i}_op"]
        if op_class == "conv":
            p, s = _measure_conv(c, gs, inputs.arrays, e, o, rng)
        else:
            p, s = _measure_operands(op_type, c, gs, inputs.arrays, e, o, rng)
        points.setdefault(parameter(op_class, c), []).extend(p)
        sets.append(s)
    return points, sets


def parameter(op_class: str, c: ProbeConfig) -> str:
    if op_class != "conv":
        return "operand_ratio"
    return "multiplier" if c.kind == "multiplier" else "accumulator"


def _brackets(points: Sequence[EnvelopePoint]) -> list[tuple[float, float]]:
    """Neighbouring measured values on either side of a safe/unsafe change, not yet resolved."""
    return [(v0, v1) for (v0, s0), (v1, s1) in itertools.pairwise(by_value(points)) if s0 != s1 and v1 / v0
            - 1 > RESOLVED]


def refine(points: Mapping[str, Sequence[EnvelopePoint]], op_class: str) -> list[ProbeConfig]:
    """Probes between neighbouring measured values where safe turns unsafe or back."""
    out = [ProbeConfig(float(v)) for v0, v1 in _brackets(points.get("operand_ratio", []))
           for v in np.geomspace(v0, v1, PER_BRACKET + 2)[1:-1]]
    if op_class == "conv":  # 8 channels per probe: one multiplier each, or one accumulator target each
        for v0, v1 in _brackets(points.get("multiplier", [])):
            out.append(ProbeConfig(float(np.sqrt(v0 * v1)) * 2 ** 1.75))
        for v0, v1 in _brackets(points.get("accumulator", [])):
            if v1 - v0 <= 2 * (128 + abs(ProbeConfig(0).zero_points[0])):
                continue  # one weight unit apart: as fine as integer weights can resolve
            step = (v1 - v0) / (3 * CONV_OUT + 1)
            out += [ProbeConfig(v0 + step * (1 + j * CONV_OUT), kind="accumulator", step=step) for j in range(3)]
    return out


def disagreements(op_type: str, top: Sequence[Candidate], measured: set[float]) -> list[ProbeConfig]:
    """Candidate configs where the top hypotheses predict differently, most disagreement first."""
    if len(top) < 2 or op_type not in ("Add", "Sub", "Concat"):
        return []
    scored = []
    for r in np.geomspace(1 / 16, 16, 97):
        c = ProbeConfig(float(r))
        if c.actual_ratio() in measured:
            continue
        gs = synthetic_spec(op_type, c)
        tables = np.stack([_table(op_type, gs, h) for h in top])
        share = float(np.mean(np.any(tables != tables[0], axis=0)))
        if share >= MIN_DISAGREEMENT:
            scored.append((share, c))
    scored.sort(key=lambda sc: -sc[0])
    return [c for _s, c in scored[:MAX_DISAGREEMENT_PROBES]]


def _table(op_type: str, gs: GroupSpec, cand: Candidate) -> np.ndarray:
    if op_type == "Concat":
        x = np.arange(-128, 128).reshape(1, -1)
        return UnarySet("probe", gs, [x, x], np.concatenate([x, x], axis=1)).predict(cand)
    return pair_table(gs, cand)


def characterize(
    op_class: str, op_type: str, ref: Backend, target: Backend, top: Callable[[list[ObservationSet]], list[Candidate]],
    budget: int, rng: np.random.Generator, progress: Progress | None = None,
) -> Characterization:
    """Up to ``budget`` target runs; ``top(sets)`` gives the current top distinct hypotheses."""
    points: dict[str, list[EnvelopePoint]] = {}
    sets: list[ObservationSet] = []
    configs = initial_configs(op_class)
    runs, notes = 0, []
    main = "multiplier" if op_class == "conv" else "operand_ratio"
    while configs and runs < budget:
        if progress:
            progress(f"characterization run {runs + 1}: {len(configs)} probe subgraphs")
        p, s = measure(op_class, op_type, configs, ref, target, rng)
        runs += 1
        for k, v in p.items():
            points.setdefault(k, []).extend(v)
        sets += s
        measured = {q.ratio for q in points.get(main, [])}
        configs = refine(points, op_class) + disagreements(op_type, top(sets), measured)
    if configs:
        notes.append(f"the run budget ({budget}) ended with {len(configs)} probe subgraphs left to measure")
    envelopes = tuple(e for e in (build_envelope(op_class, op_type, k, v) for k, v in points.items()) if e is not None)
    return Characterization(envelopes, tuple(sets), runs, tuple(notes))
