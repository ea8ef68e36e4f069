"""Profiles built from a base and a hypothesis: the one place that composes them.

A base is a built-in profile or ``float`` (every class computed as float32 DQ -> op -> Q,
a CPU float fallback; the onnxruntime profile with ``compute = float``). ``compose``
replaces one class's numerics with a hypothesis for every op of that class (a compiler
lowers by scales and shapes, not by names) and drops the base's override of the
hypothesis's op type, so that the hypothesis is what that op type computes.
"""

from __future__ import annotations

import dataclasses
from functools import cache

from qprobe.backends.engine.builtin_profiles import get_profile, known_profiles
from qprobe.backends.engine.profiles import Numerics, Profile

FLOAT_BASE = "float"


def bases() -> tuple[str, ...]:
    return (*known_profiles(), FLOAT_BASE)


@cache
def base_profile(name: str) -> Profile:
    if name == FLOAT_BASE:
        p = get_profile("onnxruntime").with_overrides({"compute": "float"})
        return dataclasses.replace(p, name=FLOAT_BASE, description="every op as float32 DQ -> op -> Q (CPU fallback)")
    return get_profile(name)


def quantize_numerics(base: str) -> Numerics:
    """What the QuantizeLinear ending a float group computes under ``base``."""
    return base_profile(base).numerics_for("quantize", "QuantizeLinear")


def compose(base: str, op_class: str, op_type: str, numerics: Numerics, name: str = "") -> Profile:
    p = base_profile(base)
    classes = {**p.classes, op_class: numerics}
    ops = {k: dict(v) for k, v in p.ops.items() if k != op_type}
    return dataclasses.replace(p, name=name or f"{base}+{op_class}", classes=classes, ops=ops)
