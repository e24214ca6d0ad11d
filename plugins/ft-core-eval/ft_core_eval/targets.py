"""What the commands read through the CLI's services: the run folder or model to load, and the datasets."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ft_core.api import ChatTarget, Conversation, Services


def resolve_target(args: argparse.Namespace, reference: str) -> ChatTarget:
    """A run folder (base + adapter, the run's chat template) or a model, resolved as ``ft-core chat`` does."""
    services: Services = args.services
    return services.chat_target(reference, list(getattr(args, "adapter", None) or ()))


def load_conversations(
    args: argparse.Namespace, names: list[str], dataset_dir: str, max_samples: int | None
) -> list[Conversation]:
    """The conversations of the datasets ``names`` (``dataset_info.json`` of ``dataset_dir`` or the demo sets)."""
    services: Services = args.services
    return services.load_conversations(names, dataset_dir=dataset_dir, max_samples=max_samples)


def default_output(reference: str, name: str) -> Path:
    """``RUN_DIR/<name>`` for a run folder, ``./<name>`` otherwise."""
    folder = Path(os.path.expanduser(reference))
    return folder / name if (folder / "manifest.json").is_file() else Path(name)
