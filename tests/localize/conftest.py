"""Make the localize test helpers and the random QDQ builder (tests/extract/qdq_random.py) importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "extract"))
