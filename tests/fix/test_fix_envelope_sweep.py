"""The envelope fix measures on the emulation when no explanation gives one.

Oracle: the closed form of the arith16-wrap hypothesis: an operand coefficient
round(r * 2**14) fits a signed 16-bit integer exactly while r < 32767.5 / 2**14, and the
emulation is onnxruntime's arithmetic elsewhere; the onnxruntime profile is exact everywhere.
"""

from __future__ import annotations

import math

import onnx_ir as ir
import pytest

from qprobe.backends import create_backend
from qprobe.fix.envelope import SweepPoint, envelope_from_points, sweep_envelope
from qprobe.rewrite import find_site

BOUNDARY = 32767.5 / 2**14


@pytest.mark.parametrize("op_class", ["eltwise", "concat"])
def test_the_sweep_finds_the_coefficient_boundary(tcn: ir.Model, op_class: str) -> None:
    site = find_site(tcn, "block0_add")
    assert not isinstance(site, str)
    swept = sweep_envelope(site, op_class, create_backend("ort-fused"), create_backend("engine:arith16-wrap"))
    env = swept.envelope
    assert env.boundary is not None and BOUNDARY <= env.boundary <= BOUNDARY * 1.002
    assert env.contains(1.0) and env.contains(1.94) and env.contains(0.1)
    assert not env.contains(2.05) and not env.contains(3.0)
    unsafe = [p for p in swept.points if not p.safe]
    assert unsafe and min(p.ratio for p in unsafe) >= BOUNDARY
    assert all(p.max_abs_lsb <= 1 for p in swept.points if p.ratio < BOUNDARY)


def test_an_exact_emulation_has_no_boundary(tcn: ir.Model) -> None:
    site = find_site(tcn, "block0_add")
    assert not isinstance(site, str)
    env = sweep_envelope(site, "eltwise", create_backend("ort-fused"), create_backend("engine:onnxruntime")).envelope
    assert env.boundary is None and env.safe == ((0.0, math.inf),) and math.isinf(env.aim())


def test_ranges_from_points_are_closed_open() -> None:
    pts = [SweepPoint(r, s, 0.0, 0.0) for r, s in [(0.5, True), (1.0, True), (2.0, False), (3.0, True), (4.0, False)]]
    env = envelope_from_points("eltwise", "Add", pts)
    assert env.safe == ((0.0, 2.0), (3.0, 4.0)) and env.boundary == 2.0
    assert env.contains(1.999) and not env.contains(2.0) and env.contains(3.0) and not env.contains(4.5)
    assert "below 2" in env.statement
