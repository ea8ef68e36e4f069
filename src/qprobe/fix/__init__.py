"""fix: rewrite the op a target computes wrong, verify every candidate, return the best model.

``fix(model, ref, target, inputs, ...)`` (``search.py``) localizes the culprit (or takes
``node``), gets an emulation of the target (a given profile, or explain's fitted one) and the
op's safe envelope, applies every pass of ``qprobe.rewrite.PASSES`` to the culprit, verifies
each candidate on the reference, the emulation and (the best few) the target
(``verify.py``), and ranks them (``rank.py``) into a ``FixResult`` (``result.py``, schema
``qprobe.fix/1``).
"""

from qprobe.fix.envelope import SweptEnvelope, sweep_envelope
from qprobe.fix.explain_bridge import emulation_of, explain_emulation
from qprobe.fix.measure import Baseline, StageResult
from qprobe.fix.result import SCHEMA, VERDICTS, BoardNote, Candidate, FixResult
from qprobe.fix.search import fix

__all__ = [
    "SCHEMA", "VERDICTS", "Baseline", "BoardNote", "Candidate", "FixResult", "StageResult", "SweptEnvelope",
    "emulation_of", "explain_emulation", "fix", "sweep_envelope",
]
