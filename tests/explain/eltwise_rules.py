"""Rules of the simulated NPUs for Add/Sub and Concat: every such group runs on an affine unit.

The unit's coefficients come from the scale ratios; nothing looks at node names. A ratio of
2 or more does not fit a 16-bit coefficient at shift 14, and what the unit does then is
the defect each target script chooses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from npu_arith import affine_unit
from npu_sim import Compute, Group


def _f32(x: np.ndarray) -> float:
    return float(np.float32(np.asarray(x).reshape(-1)[0]))


def add_rule(overflow: str, rounding: str = "half_up") -> Callable[[Group], Compute | None]:
    def rule(g: Group) -> Compute | None:
        if len(g.inputs) != 2 or g.out_q[2] != "int8":
            return None
        (sa, za), (sb, zb) = g.in_q
        so, zo = float(np.float32(g.out_q[0])), g.out_q[1]
        sign = -1.0 if g.op_type == "Sub" else 1.0
        ra, rb = _f32(sa) / so, sign * _f32(sb) / so
        offset = zo - ra * int(za) - rb * int(zb)
        lo, hi = g.qrange

        def fn(codes: list[np.ndarray]) -> np.ndarray:
            a, b = np.broadcast_arrays(*codes)
            return affine_unit([ra, rb], offset, [a, b], lo, hi, overflow, rounding=rounding).astype(np.int8)

        return Compute(fn)

    return rule


def concat_rule(overflow: str) -> Callable[[Group], Compute | None]:
    def rule(g: Group) -> Compute | None:
        so, zo = float(np.float32(g.out_q[0])), g.out_q[1]
        lo, hi = g.qrange
        axis = int(g.attrs.get("axis", 0))  # type: ignore[call-overload]
        maps = []
        for s, z in g.in_q:
            r = _f32(s) / so
            same = _f32(s) == so and int(z) == zo
            maps.append(None if same else (r, zo - r * int(z)))

        def fn(codes: list[np.ndarray]) -> np.ndarray:
            parts = [x if m is None else affine_unit([m[0]], m[1], [x], lo, hi, overflow).astype(np.int8)
                     for x, m in zip(codes, maps, strict=True)]
            return np.concatenate(parts, axis=axis)

        return Compute(fn)

    return rule
