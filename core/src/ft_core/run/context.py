"""What a training stage gets to work with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_core.components import ModelFamily
from ft_core.config.validate import RunConfig
from ft_core.plugins import Plugins


@dataclass
class RunContext:
    """Everything resolved for one run. Stages read it; the runner fills it step by step."""

    config: RunConfig
    plugins: Plugins
    run_dir: Path
    tokenizer: Any = None
    #: ``ft_core.templates.resolve.ResolvedTemplate`` for conversation stages, else ``None``.
    template: Any = None
    family: ModelFamily | None = None
    model: Any = None
