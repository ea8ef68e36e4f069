"""qprobe's integer engine: a bit-exact int8/int16 interpreter with named numerics profiles.

Public entry points: ``EngineBackend`` (the ``engine:PROFILE`` backend), ``get_profile``
and ``known_profiles`` (built-in and TOML profiles), ``Profile``/``Numerics`` (the knobs,
see ``profiles.py`` for the override key syntax) and ``numerics`` (the TFLite/CMSIS-NN
arithmetic primitives on raw integer parameters).
"""

from qprobe.backends.engine import numerics
from qprobe.backends.engine.backend import EngineBackend, EngineSession
from qprobe.backends.engine.builtin_profiles import get_profile, known_profiles
from qprobe.backends.engine.profiles import KNOBS, OP_CLASSES, Numerics, Profile, load_profile_file

__all__ = [
    "KNOBS", "OP_CLASSES", "EngineBackend", "EngineSession", "Numerics", "Profile", "get_profile",
    "known_profiles", "load_profile_file", "numerics",
]
