"""Cross-package tests run in strict mode; fixtures come from ft_core.testing (tiny models, make_config, ...).

Under pytest-xdist the end-to-end tests (marker ``e2e``: minutes each on the real model) start first, so that the
short tests fill the other workers around them instead of one worker finishing them alone at the end.
"""

from __future__ import annotations

import os

import pytest

# CI runs in strict mode: a plugin of this repo that fails to load fails the tests.
os.environ.setdefault("FT_CORE_STRICT", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first under xdist: the ``e2e`` tests (in file order) ahead of the rest (in collection order)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
