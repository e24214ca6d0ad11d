"""``ft_core.testing``: a pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures:
``tiny_tokenizer``   a byte-level BPE tokenizer with common chat special tokens and a ChatML template.
``tiny_model``       a random-init Llama-architecture model matching ``tiny_tokenizer`` (a few k params).
``tiny_model_dir``   both saved as a Hugging Face folder in a temporary directory (a path string; each test gets
                     its own copy of a folder built once per test process).
``make_config``      ``make_config(name="config.yaml", **sections)`` writes a run config for ``tiny_model_dir`` (LoRA SFT on
                     the ``identity`` demo set, 2 CPU steps, a private data cache) with each keyword merged over
                     that section, and returns its path: ``make_config(stage="pt", data={"dataset": ["c4_demo"]})``.
``make_plugins``     ``make_plugins(module, ...)`` builds a plugin manager holding only the given plugin
                     modules plus core built-ins, with strict mode on (also when the plugin is pip-installed).

Helpers: :func:`run_config` (a whole ``ft-core run`` in-process with the plugin under test loaded),
:func:`make_encoder` (the run's :class:`~ft_core.api.Encoder` for a tokenizer and template, to test a
stage's ``preprocess``), :func:`tiny_tokenizer`, :func:`tiny_model`, :func:`save_tiny_model_dir`,
:func:`save_tiny_word_model_dir` (a ~20-token word-level model for online-RL signal tests).

Logging: for the whole session, ft-core's and every installed plugin's loggers print on stderr as under the CLI
(``[ft-core] ...`` info lines, ``ft-core: warning: ...``), so ``capsys`` / ``capfd`` see them; ``caplog`` works too.

Conformance checks: :mod:`ft_core.testing.conformance` (chat templates), :mod:`ft_core.testing.conformance_adapters`
(adapter methods) and :mod:`ft_core.testing.import_light` (any plugin: registration imports no heavy library);
:mod:`ft_core.testing.quantizers` has the run, config, loading and batch helpers a quantizer's tests need.
:mod:`ft_core.testing.padding_free` runs a ``packs_padded_batches`` stage padded and packed and compares the steps.

Parallel runs: under pytest-xdist (``pytest -n N``) each worker runs torch on its share of the CPU cores and the
processes its tests start with sleeping OpenMP threads (:mod:`ft_core.testing.workers`), so that N workers do not
oversubscribe the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ft_core.api.context import Encoder
from ft_core.testing.tiny import save_tiny_model_dir, save_tiny_word_model_dir, tiny_model, tiny_tokenizer

__all__ = [
    "make_encoder",
    "run_config",
    "save_tiny_model_dir",
    "save_tiny_word_model_dir",
    "tiny_model",
    "tiny_tokenizer",
]

#: Under pytest-xdist each worker takes its share of the CPU cores (:mod:`ft_core.testing.workers`).
pytest_plugins = ["ft_core.testing.workers"]


def run_config(
    config: str | Path,
    *modules: ModuleType,
    overrides: Sequence[str] = (),
    distribution: str = "plugin-under-test",
) -> Path:
    """Run ``ft-core run CONFIG [overrides]`` in this process with the plugin ``modules`` loaded (also when they are
    not pip-installed) and return the run folder: an end-to-end test of a plugin without the CLI."""
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    plugins = load_plugins(strict=True, extra=[(m, distribution) for m in modules])
    return run_training(load_and_validate(str(config), list(overrides), plugins), plugins)


def make_encoder(
    tokenizer: Any,
    jinja: str | None = None,
    *,
    cutoff_len: int = 1024,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    system: str | None = None,
    prefix_stable: bool = True,
    template_kwargs: dict[str, Any] | None = None,
) -> Encoder:
    """The :class:`~ft_core.api.Encoder` a run would give a stage: ``tokenizer`` with the chat template ``jinja``
    (default: the tokenizer's own) and the given ``data`` / ``template.kwargs`` options (``prefix_stable`` as the
    template declares it)."""
    from ft_core.engine.templates.encoder import TemplateEncoder

    return TemplateEncoder(
        tokenizer=tokenizer,
        jinja=jinja if jinja is not None else tokenizer.chat_template,
        cutoff_len=cutoff_len,
        train_on_prompt=train_on_prompt,
        mask_history=mask_history,
        system=system,
        prefix_stable=prefix_stable,
        template_kwargs=dict(template_kwargs or {}),
    )


_LOGGING_UNDO = pytest.StashKey[Callable[[], None]]()


def pytest_configure(config: pytest.Config) -> None:
    """Show ft-core's and the installed plugins' info lines and warnings on (the current) stderr, as the CLI does."""
    import importlib.metadata as metadata

    from ft_core.engine.logs import configure_logging, package_names
    from ft_core.engine.plugins import ENTRY_POINT_GROUP

    modules = [entry_point.value for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    config.stash[_LOGGING_UNDO] = configure_logging(0, package_names(modules))


def pytest_unconfigure(config: pytest.Config) -> None:
    undo = config.stash.get(_LOGGING_UNDO, None)
    if undo is not None:
        undo()


@pytest.fixture(name="tiny_tokenizer")
def _tiny_tokenizer_fixture() -> Any:
    return tiny_tokenizer()


@pytest.fixture(name="tiny_model")
def _tiny_model_fixture(tiny_tokenizer: Any) -> Any:
    return tiny_model(tiny_tokenizer)


@pytest.fixture(scope="session", name="_ft_core_tiny_model_source")
def _tiny_model_source_fixture(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model folder, built once per test process (each test gets a copy of it)."""
    return save_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-model-source")))


@pytest.fixture(name="tiny_model_dir")
def _tiny_model_dir_fixture(tmp_path_factory: pytest.TempPathFactory, _ft_core_tiny_model_source: str) -> str:
    import shutil

    target = tmp_path_factory.mktemp("tiny-model")
    return str(shutil.copytree(_ft_core_tiny_model_source, target, dirs_exist_ok=True))


@pytest.fixture(name="make_config")
def _make_config_fixture(tmp_path: Path, tiny_model_dir: str) -> Callable[..., Path]:
    import yaml

    def make(name: str = "config.yaml", **sections: Any) -> Path:
        config: dict[str, Any] = {
            "model": {"name_or_path": tiny_model_dir},
            "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
            "adapter": {"method": "lora", "rank": 4, "alpha": 8},
            "training": {
                "output_dir": str(tmp_path / "run"),
                "max_steps": 2,
                "per_device_train_batch_size": 2,
                "learning_rate": 1e-3,
                "logging_steps": 1,
                "save_steps": 100,
                "use_cpu": True,
            },
        }
        for (
            section,
            value,
        ) in sections.items():  # a mapping merges over a default section; anything else replaces it
            if section != "adapter" and isinstance(value, dict) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **value}
            else:
                config[section] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return make


@pytest.fixture(name="make_plugins")
def _make_plugins_fixture() -> Callable[..., Any]:
    from ft_core.bootstrap import load_plugins

    def make(*modules: ModuleType | str, distribution: str = "plugin-under-test") -> Any:
        loaded = [m if isinstance(m, ModuleType) else __import__(m, fromlist=["_"]) for m in modules]
        return load_plugins(strict=True, entry_points=False, extra=[(m, distribution) for m in loaded])

    return make
