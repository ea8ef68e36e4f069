"""RatioEnvelope: where a pass aims an operand ratio, and the JSON form of the contract."""

from __future__ import annotations

import math

import pytest

from qprobe.rewrite import RatioEnvelope
from qprobe.rewrite.envelope import MARGIN


def test_aim_is_just_inside_the_top_of_the_range_holding_one() -> None:
    env = RatioEnvelope("eltwise", ((0.0, 2.0), (3.0, 4.0)), 2.0)
    assert env.aim() == pytest.approx(2.0 * (1 - MARGIN)) and env.contains(env.aim())
    assert math.isinf(RatioEnvelope.unbounded("eltwise").aim())


def test_a_narrow_home_range_aims_at_its_middle() -> None:
    env = RatioEnvelope("eltwise", ((0.995, 1.01),), 1.01)
    assert env.aim() == pytest.approx(0.5 * (0.995 + 1.01)) and env.contains(env.aim())


def test_no_range_around_one_aims_at_one_and_says_so() -> None:
    env = RatioEnvelope("eltwise", ((0.0, 0.9),), 0.9)
    assert env.home() is None and env.aim() == 1.0 and "no safe ratio range" in env.limit_text()


def test_json_round_trip_writes_infinity_as_null() -> None:
    env = RatioEnvelope("concat", ((0.0, 2.0), (3.0, math.inf)), 2.0, "x")
    d = env.to_json()
    assert d["safe"] == [[0.0, 2.0], [3.0, None]] and d["parameter"] == "operand_ratio"
    assert RatioEnvelope.from_json(d) == env
