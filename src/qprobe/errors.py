"""Typed errors of qprobe.

A ``QprobeError`` is a *user* error: the CLI prints its message on one line and exits
with code 2, never a traceback. Anything else that escapes is an internal bug and keeps
its traceback. Messages say what was expected, what was found and what to do.
"""

from __future__ import annotations


class QprobeError(Exception):
    """Base class of every error a user can cause and fix."""

    exit_code: int = 2


class ModelError(QprobeError):
    """The model file is missing, unreadable, not ONNX, or not a graph qprobe handles."""


class InputError(QprobeError):
    """Input data is missing, has the wrong keys, shapes or dtypes."""


class BackendError(QprobeError):
    """A backend name is unknown, a backend cannot run a model, or a target run failed."""


class UnsupportedOpError(BackendError):
    """The integer engine has no kernel for an op (never a silent float fallback)."""


class ProfileError(QprobeError):
    """A numerics profile or one of its overrides is invalid."""


class TargetRunError(BackendError):
    """An external target run failed; the message names the kept work directory."""
