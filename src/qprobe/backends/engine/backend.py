"""``engine:PROFILE``: qprobe's integer interpreter as a backend.

``EngineBackend.from_spec(arg, options)`` takes a built-in profile name or a ``.toml``
path and ``key=value`` knob overrides (see ``profiles.py`` for the key syntax);
``EngineBackend(profile)`` takes a ``Profile`` directly. ``open(model)`` compiles the
model once; ``Session.run`` executes it vectorized over the samples on axis 0 and
returns every graph output with the dtype onnxruntime would return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

import numpy as np
import onnx_ir as ir

from qprobe import threads
from qprobe.backends.base import BackendBase, Capabilities
from qprobe.backends.engine.batch_split import SplitRunner
from qprobe.backends.engine.builtin_profiles import get_profile
from qprobe.backends.engine.interpreter import Program, compile_program
from qprobe.backends.engine.profiles import Profile
from qprobe.errors import BackendError
from qprobe.model.extract import CLONE_SUFFIX
from qprobe.threads import blas_threads


class EngineBackend(BackendBase):
    """The integer engine under one numerics profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.spec = f"engine:{profile.name}"

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, str]) -> EngineBackend:
        if not arg:
            raise BackendError("engine needs a profile: engine:PROFILE (a built-in name or a .toml file)")
        profile = get_profile(arg)
        backend = cls(profile.with_overrides(dict(options)) if options else profile)
        backend.spec = f"engine:{arg}"
        return backend

    def capabilities(self) -> Capabilities:
        return Capabilities(max_outputs_per_run=None, cost_per_run_s=0.0)

    def open(self, model: ir.Model) -> EngineSession:
        """Compile ``model``; a node override naming a node that is not in it is an error."""
        pools = threads.configure()  # numpy's BLAS at its deliberate setting (qprobe.threads)
        return EngineSession(compile_program(model, self.profile), self.profile, pools.engine)

    def scoped(self, nodes: Collection[str]) -> EngineBackend:
        """The backend for a cut made of ``nodes``: node overrides of other nodes are dropped, and
        a fed copy of a node (``<name>__iso``, see ``model.extract``) gets that node's overrides."""
        if not self.profile.nodes:
            return self
        keep = {n: self.profile.nodes[base] for n in nodes
                if (base := n.removesuffix(CLONE_SUFFIX)) in self.profile.nodes}
        scoped = EngineBackend(dataclasses.replace(self.profile, nodes=keep))
        scoped.spec, scoped.spec_options = self.spec, self.spec_options
        return scoped


class EngineSession:
    def __init__(self, program: Program, profile: Profile, threads: int = 1) -> None:
        self.program = program
        self._runner = SplitRunner(program.run, program.inputs, threads, blas_threads() if threads > 1 else None,
                                   split_blocker=program.split_blocker)
        self._ways_seen = 0
        self.info: dict[str, str] = {
            "profile": profile.name,
            "profile_description": profile.description,
            "steps": str(len(program.steps)),
            "threads": str(threads),
        }
        if program.split_blocker is not None:
            self.info["batch_split"] = f"off: {program.split_blocker}"
        if program.notes:
            self.info["float_nodes"] = "; ".join(f"{k}: {v}" for k, v in program.notes.items())
        if program.weight_notes:
            self.info["quantized_float_weights"] = "; ".join(f"{k}: {v}" for k, v in program.weight_notes.items())

    def run(self, feeds: Mapping[str, np.ndarray], *, first_sample: int = 0) -> dict[str, np.ndarray]:
        out = self._runner(feeds)
        decided = self._runner.decided
        if len(decided) != self._ways_seen:  # provenance: how each batch size runs, once measured
            self._ways_seen = len(decided)
            self.info["batch_ways"] = ", ".join(f"{size}: {way}" for size, way in sorted(decided.items()))
        return out

    def close(self) -> None:
        self._runner.close()
        self.program.steps.clear()
