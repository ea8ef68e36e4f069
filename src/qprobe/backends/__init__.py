"""Backends: reference and target implementations behind one protocol (see base.py)."""

from qprobe.backends.base import Backend, BackendBase, Capabilities, Session
from qprobe.backends.registry import create_backend, known_backends

__all__ = ["Backend", "BackendBase", "Capabilities", "Session", "create_backend", "known_backends"]
