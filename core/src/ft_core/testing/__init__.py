"""``ft_core.testing``: a pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures:
``tiny_tokenizer``   a byte-level BPE tokenizer with common chat special tokens and a ChatML template.
``tiny_model``       a random-init Llama-architecture model matching ``tiny_tokenizer`` (a few k params).
``tiny_model_dir``   both saved as a Hugging Face folder in a temporary directory (a path string).
``make_plugins``     ``make_plugins(module, ...)`` builds a plugin manager holding only the given plugin
                     modules plus core built-ins, with strict mode on.

Conformance checks: :mod:`ft_core.testing.conformance` (chat templates), :mod:`ft_core.testing.conformance_adapters`
(adapter methods) and :mod:`ft_core.testing.import_light` (any plugin: registration imports no heavy library).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from ft_core.testing.tiny import save_tiny_model_dir, tiny_model, tiny_tokenizer

__all__ = ["save_tiny_model_dir", "tiny_model", "tiny_tokenizer"]


@pytest.fixture(name="tiny_tokenizer")
def _tiny_tokenizer_fixture() -> Any:
    return tiny_tokenizer()


@pytest.fixture(name="tiny_model")
def _tiny_model_fixture(tiny_tokenizer: Any) -> Any:
    return tiny_model(tiny_tokenizer)


@pytest.fixture(name="tiny_model_dir")
def _tiny_model_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(name="make_plugins")
def _make_plugins_fixture() -> Callable[..., Any]:
    from ft_core.plugins import build_plugins

    def make(*modules: ModuleType | str, distribution: str = "plugin-under-test") -> Any:
        loaded = [m if isinstance(m, ModuleType) else __import__(m, fromlist=["_"]) for m in modules]
        return build_plugins(strict=True, entry_points=False, extra=[(m, distribution) for m in loaded])

    return make
