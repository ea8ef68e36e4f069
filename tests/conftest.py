"""Shared test setup: make tests/ importable for helper modules such as qdq_models."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
