"""The one place where backend names are mapped to implementations.

A spec is ``NAME`` or ``NAME:ARGUMENT`` (the argument is everything after the first
colon, so paths and command templates may contain colons). ``options`` are the
backend's own key=value settings (``--ref-opt``/``--target-opt`` on the CLI; for
``engine`` they are profile overrides, for ``command`` timeouts, retries, capabilities).
Factories import their module lazily so that ``import qprobe`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qprobe.backends.base import Backend
from qprobe.errors import BackendError


def _ort(arg: str | None, options: Mapping[str, str]) -> Backend:
    from qprobe.backends.onnxruntime import OrtBackend

    return OrtBackend(fused=False, arg=arg, options=options)


def _ort_fused(arg: str | None, options: Mapping[str, str]) -> Backend:
    from qprobe.backends.onnxruntime import OrtBackend

    return OrtBackend(fused=True, arg=arg, options=options)


def _engine(arg: str | None, options: Mapping[str, str]) -> Backend:
    from qprobe.backends.engine.backend import EngineBackend

    return EngineBackend.from_spec(arg or "", options)


def _recorded(arg: str | None, options: Mapping[str, str]) -> Backend:
    from qprobe.backends.recorded import RecordedBackend

    return RecordedBackend.from_spec(arg or "", options)


def _command(arg: str | None, options: Mapping[str, str]) -> Backend:
    from qprobe.backends.command import CommandBackend

    return CommandBackend.from_spec(arg or "", options)


def _openvino(arg: str | None, options: Mapping[str, str]) -> Backend:
    try:
        from qprobe.backends.openvino import OpenVinoBackend
    except ImportError as e:
        if (e.name or "").split(".")[0] != "openvino":
            raise
        raise BackendError(
            "backend 'openvino' needs the openvino package, which is not installed: pip install qprobe[openvino]"
        ) from e
    return OpenVinoBackend(arg, options)


def _ort_ep(arg: str | None, options: Mapping[str, str]) -> Backend:
    from qprobe.backends.onnxruntime import OrtEpBackend

    return OrtEpBackend(arg or "", options)


# name -> (factory, argument required?, one-line help)
BACKENDS: dict[str, tuple[Callable[[str | None, Mapping[str, str]], Backend], bool, str]] = {
    "ort": (_ort, False, "onnxruntime, graph optimizations off: float DQ -> op -> Q"),
    "ort-fused": (_ort_fused, False, "onnxruntime, optimizations on, QDQ fused to integer kernels"),
    "ort-ep": (_ort_ep, True, "onnxruntime with an execution provider: ort-ep:QNNExecutionProvider, ..."),
    "openvino": (_openvino, False, "OpenVINO on a device: openvino[:CPU|GPU|NPU], int8 as the device runs it"),
    "engine": (_engine, True, "qprobe's integer engine with a numerics profile: engine:PROFILE"),
    "recorded": (_recorded, True, "tensors recorded elsewhere: recorded:PATH (.npz or ST val_io.npz)"),
    "command": (_command, True, "an external command that runs the target: command:TEMPLATE"),
}


def known_backends() -> list[str]:
    return [f"{n}:..." if req else n for n, (_, req, _h) in BACKENDS.items()]


def create_backend(spec: str, options: Mapping[str, str] | None = None) -> Backend:
    """Build a backend from its spec string; unknown names list the known ones."""
    name, sep, arg = spec.partition(":")
    entry = BACKENDS.get(name.strip())
    if entry is None:
        raise BackendError(
            f"unknown backend {spec!r}; known backends: {', '.join(known_backends())}"
        )
    factory, required, _help = entry
    if required and not arg:
        raise BackendError(f"backend {name!r} needs an argument, e.g. {name}:... ; see --help")
    backend = factory(arg if sep else None, dict(options or {}))
    backend.spec_options = dict(options or {})
    return backend
