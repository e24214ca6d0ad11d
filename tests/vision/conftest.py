"""Fixtures of the vision-language tests: tiny VLM folders and a run config on the shapes demo set."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
