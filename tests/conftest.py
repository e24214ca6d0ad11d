"""Cross-package tests run in strict mode; fixtures come from ft_core.testing (tiny models, make_config, ...)."""

from __future__ import annotations

import os

# CI runs in strict mode: a plugin of this repo that fails to load fails the tests.
os.environ.setdefault("FT_CORE_STRICT", "1")
