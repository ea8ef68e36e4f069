"""The backend protocol: what every reference or target implementation provides.

A backend is named by one *spec* string (``ort``, ``ort-fused``, ``engine:PROFILE``,
``recorded:PATH``, ``command:TEMPLATE``; see ``qprobe.backends.registry``). Its lifecycle
follows Polygraphy's runners: ``open(model)`` prepares a session for one model (compile,
flash, load), ``Session.run(feeds)`` runs a batch of samples, ``Session.close()`` frees it.

Every array crossing this boundary has a leading sample axis that *is* the model's batch
axis: a model whose batch dimension is fixed to 1 still receives ``N`` samples stacked on
axis 0, and the session splits them as it needs to.

Two optional hooks, used by backends that replay recordings: ``bind(model)`` maps the
recording onto a model before anything else is asked of the backend (ST files are keyed by
index, not by name), and ``recorded_inputs()`` returns the recorded input samples, which
compare and localize use when the user gives none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import onnx_ir as ir


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, so that compare and localize can plan their runs.

    ``max_outputs_per_run``: how many tensors one run can return (None: any number).
    ``cost_per_run_s``: rough wall time of one run (compile + flash + validate on hardware).
    ``accepts_models``: False for backends that only replay recorded data.
    ``available_tensors``: the only tensors this backend can ever return (None: any).
    ``batch_size``: samples per ``Session.run`` call it prefers (None: all at once).
    """

    max_outputs_per_run: int | None = None
    cost_per_run_s: float = 0.0
    accepts_models: bool = True
    available_tensors: frozenset[str] | None = None
    batch_size: int | None = None
    exact: bool = False


@runtime_checkable
class Session(Protocol):
    """One model prepared on one backend."""

    info: dict[str, str]

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        """Run ``feeds`` (samples on axis 0); return every graph output by name.

        ``first_sample`` is the index of ``feeds``' first sample in the whole input set
        (recorded backends use it to find the matching recorded samples).
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    spec: str

    def capabilities(self) -> Capabilities: ...

    def open(self, model: ir.Model) -> Session: ...


def bind_backend(backend: Backend, model: ir.Model) -> None:
    """Call the backend's optional ``bind(model)`` hook."""
    bind = getattr(backend, "bind", None)
    if bind is not None:
        bind(model)
