"""The backend protocol: what every reference or target implementation provides.

A backend is named by one *spec* string (``ort``, ``ort-fused``, ``engine:PROFILE``,
``recorded:PATH``, ``command:TEMPLATE``; see ``qprobe.backends.registry``). Its lifecycle
follows Polygraphy's runners: ``open(model)`` prepares a session for one model (compile,
flash, load), ``Session.run(feeds)`` runs a batch of samples, ``Session.close()`` frees it.
``open`` depends on nothing but its argument: a backend is stateless between opens.

Every array crossing this boundary has a leading sample axis that *is* the model's batch
axis: a model whose batch dimension is fixed to 1 still receives ``N`` samples stacked on
axis 0, and the session splits them as it needs to.

Four declared hooks, with defaults in ``BackendBase``: ``scoped(nodes)`` gives the backend to
open a cut with (per-node configuration restricted to the cut's nodes, explicitly, so that
``open`` stays stateless); ``bind(model)`` maps a recording
onto a model before anything else is asked of the backend (ST files are keyed by index, not
by name); ``recorded_inputs(model)`` returns the recorded input samples (None for backends
that record nothing), which the stages use when the user gives none; ``fusion_groups(model)``
says which nodes the backend runs as one kernel (node-name groups, in graph order; None when
it cannot tell), so that localize can isolate a fused group as one unit.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import onnx
import onnx_ir as ir


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, so that the stages can plan their runs.

    ``accepts_models``: it runs any model it is given (probed, cut, synthetic); False for
    backends that only replay recorded data.
    ``max_outputs_per_run``: how many tensors one run can return (None: any number).
    ``cost_per_run_s``: rough wall time of one run (compile + flash + validate on hardware).
    ``available_tensors``: the only tensors this backend can ever return (None: any).
    ``batch_size``: samples per ``Session.run`` call it prefers (None: all at once).
    ``concurrency``: how many sessions may run at once (1: one at a time, a single board).
    ``deterministic``: the same model and samples always give the same outputs.
    ``probe_sensitive``: exposing tensors may change what it computes (a compiler that fuses
    differently), so the probe-effect check must always run.
    ``resource``: the Dask resource one session holds while it runs (``board``: workers started
    with ``--resources board=1`` each own one board); None: any worker may run it (qprobe.execute).
    ``types_outputs``: it runs models whose added graph outputs carry no type (it types them
    itself), and its sessions are ``TypedSession``s: a comparison then takes the probed
    tensors' types and shapes from the reference session instead of ONNX shape inference.
    """

    accepts_models: bool = True
    max_outputs_per_run: int | None = None
    cost_per_run_s: float = 0.0
    available_tensors: frozenset[str] | None = None
    batch_size: int | None = None
    concurrency: int = 1
    deterministic: bool = True
    probe_sensitive: bool = False
    resource: str | None = None
    types_outputs: bool = False

    @property
    def whole_run(self) -> bool:
        """Costly backends that want every sample in one run (hardware in the loop)."""
        return self.batch_size is None and self.cost_per_run_s > 0


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
class TypedSession(Session, Protocol):
    """A session that reports the types its runtime inferred (``Capabilities.types_outputs``)."""

    def value_types(self) -> dict[str, onnx.ValueInfoProto]:
        """Every input and output the session knows the element type of, with its shape where
        known (a dimension of unknown size has neither value nor name; an unknown shape, none)."""
        ...


@runtime_checkable
class Backend(Protocol):
    spec: str
    spec_options: dict[str, str]

    def capabilities(self) -> Capabilities: ...

    def open(self, model: ir.Model) -> Session: ...

    def bind(self, model: ir.Model) -> None: ...

    def recorded_inputs(self, model: ir.Model) -> dict[str, np.ndarray] | None: ...

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None: ...

    def scoped(self, nodes: Collection[str]) -> Backend: ...


class BackendBase:
    """Default hooks for backends that record nothing (subclass and implement the rest).

    ``spec`` is the backend's spec string and ``spec_options`` the ``key=value`` options it was
    created with (``create_backend`` sets them): together they rebuild the backend.
    """

    spec: str = ""
    spec_options: dict[str, str] = {}

    def bind(self, model: ir.Model) -> None:
        """Nothing to map: the backend runs whatever model it is given."""

    def recorded_inputs(self, model: ir.Model) -> dict[str, np.ndarray] | None:
        return None

    def fusion_groups(self, model: ir.Model) -> list[tuple[str, ...]] | None:
        """Unknown: the backend does not report how it fuses nodes."""
        return None

    def scoped(self, nodes: Collection[str]) -> Backend:
        """The backend to open a cut of the model with, made of ``nodes`` (names as in the cut).

        Backends configured per node (engine profiles with ``nodes.<name>`` overrides) keep only
        what applies to those nodes; the default is the backend itself. Stages that cut a model
        call this explicitly, so that ``open`` never depends on what was opened before.
        """
        return self  # type: ignore[return-value]


def backend_label(backend: Backend) -> str:
    """The backend as tables and JSON show it: its spec, and the options it was created with."""
    opts = getattr(backend, "spec_options", None) or {}
    if not opts:
        return backend.spec
    return f"{backend.spec} (set {', '.join(f'{k}={v}' for k, v in opts.items())})"


def describe_backend(backend: Backend) -> dict[str, object]:
    """A parseable description: ``create_backend(d["spec"], d["options"])`` rebuilds it."""
    return {"spec": backend.spec, "options": dict(getattr(backend, "spec_options", None) or {})}
