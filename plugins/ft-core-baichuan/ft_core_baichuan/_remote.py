"""The ``model.trust_remote_code`` check of remote-code families (standard library only)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ft_core.api import ModelFamily, RunConfig


def remote_code_problems(config: RunConfig, families: Iterable[ModelFamily]) -> list[str]:
    """A problem when the configured model is a local folder of one of ``families`` that needs its own code and
    ``model.trust_remote_code`` is off (hub ids are not looked up: nothing is downloaded to validate)."""
    model = config.model
    if model.trust_remote_code or not model.name_or_path:
        return []
    path = Path(model.name_or_path).expanduser() / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    model_type = str(data.get("model_type", ""))
    architectures = [str(a) for a in data.get("architectures") or []]
    for family in families:
        if family.trust_remote_code and family.covers(model_type, architectures):
            return [
                f"model.trust_remote_code: {model.name_or_path!r} is a {family.description} model (model_type "
                f"{model_type!r}, architectures {architectures}) whose architecture transformers does not include, "
                "so the model's own Python code must run. Set model.trust_remote_code: true if you trust that code"
            ]
    return []
