"""Fixtures of the ft-core-export tests: a finished LoRA run on the tiny model, and the arguments the CLI hands to
a command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import ft_core_export
from ft_core.testing import run_config


@pytest.fixture(scope="session")
def export_plugins() -> Any:
    """Core's built-ins, the installed first-party plugins and this one (as the CLI loads them)."""
    from ft_core.bootstrap import load_plugins

    return load_plugins(strict=True, extra=[(ft_core_export, "ft-core-export")])


@pytest.fixture
def command_args(export_plugins: Any) -> Callable[..., argparse.Namespace]:
    """``command_args(run_dir, **options)``: the namespace ``ft-core export`` gets from the CLI."""
    from ft_core.bootstrap import engine_services

    def make(run_dir: str | Path, **options: Any) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        ft_core_export.ExportCommand().add_arguments(parser)
        args = parser.parse_args([str(run_dir)])
        for key, value in options.items():
            setattr(args, key, value)
        args.plugins = export_plugins
        args.services = engine_services(export_plugins)
        return args

    return make


def _run(tmp: Path, model_dir: str, adapter: dict[str, Any]) -> Path:
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp / "cache")},
        "adapter": adapter,
        "training": {
            "output_dir": str(tmp / "run"),
            "max_steps": 3,
            "per_device_train_batch_size": 2,
            "learning_rate": 5e-2,  # large enough that the adapter visibly changes the logits
            "logging_steps": 1,
            "save_steps": 100,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return run_config(path)


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir_session: str) -> Path:
    """A finished 3-step LoRA SFT run on the tiny model."""
    return _run(
        tmp_path_factory.mktemp("lora"), tiny_model_dir_session, {"method": "lora", "rank": 4, "alpha": 8}
    )


@pytest.fixture(scope="session")
def tiny_model_dir_session(tmp_path_factory: pytest.TempPathFactory) -> str:
    from ft_core.testing import save_tiny_model_dir

    return save_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir_session: str) -> Path:
    """A finished 3-step full fine-tuning run on the tiny model."""
    return _run(tmp_path_factory.mktemp("full"), tiny_model_dir_session, {"method": "full"})
