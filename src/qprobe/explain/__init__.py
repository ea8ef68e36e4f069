"""explain: what the target computes instead, for one localized op, and a profile that reproduces it.

``explain(model, ref, target, inputs, ...)`` returns an ``Explanation`` (schema
``qprobe.explanation/1``): ranked arithmetic hypotheses from the engine's knob space, the
model-free evidence, optionally the safe ``Envelope`` from characterization runs, and the
fitted engine profile as TOML text. Modules: ``observe`` (observations of the op),
``space`` (the hypothesis space as data), ``evaluate`` and ``search`` (fast evaluation),
``evidence`` and ``pattern`` (model-free evidence), ``probes`` and ``characterize``
(characterization runs), ``envelope``, ``fitted`` and ``compose`` (the fitted profile),
``causes`` (non-arithmetic causes and the rule-out checklist), ``pipeline`` (the steps).
"""

from qprobe.explain.envelope import Envelope, EnvelopePoint
from qprobe.explain.explanation import SCHEMA, Explanation, Hypothesis
from qprobe.explain.pipeline import explain

__all__ = ["SCHEMA", "Envelope", "EnvelopePoint", "Explanation", "Hypothesis", "explain"]
