"""Make the random QDQ model builder (qdq_random.py) importable by the extract and localize tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
