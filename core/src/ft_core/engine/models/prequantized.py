"""Pre-quantized checkpoints (GPTQ, AWQ, AQLM, ...): detected from ``config.json``'s ``quantization_config``.

transformers loads such a checkpoint with its backend library on its own (no ``quantization:`` section is needed
or allowed); ft-core checks before anything loads that the backend is installed and that only an adapter trains.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from ft_core.engine.models.loader import read_model_config


@dataclass(frozen=True)
class Backend:
    """What transformers needs to load one ``quant_method``: importable modules and the command installing them."""

    label: str
    modules: tuple[str, ...]
    install: str


#: The backends transformers 5.x loads pre-quantized checkpoints with (GPTQ needs optimum too; AWQ checkpoints load
#: through gptqmodel since transformers 5).
BACKENDS: dict[str, Backend] = {
    "gptq": Backend("GPTQ", ("gptqmodel", "optimum"), "pip install gptqmodel optimum"),
    "awq": Backend("AWQ", ("gptqmodel",), "pip install gptqmodel"),
    "aqlm": Backend("AQLM", ("aqlm",), "pip install 'aqlm[gpu,cpu]>=1.0.2'"),
}


def quant_method(folder: str | None) -> str | None:
    """The ``quantization_config.quant_method`` of the model folder's ``config.json`` (lower case), or ``None``."""
    data = read_model_config(folder) if folder else None
    quantization = (data or {}).get("quantization_config")
    if not isinstance(quantization, dict):
        return None
    method = quantization.get("quant_method")
    return str(method).lower() if method else "unknown"


def missing_backend(method: str) -> str | None:
    """The install command for ``method``'s backend when a module of it is missing, else ``None``."""
    backend = BACKENDS.get(method)
    if backend is None or all(importlib.util.find_spec(m) is not None for m in backend.modules):
        return None
    return backend.install


def problems(config: Any) -> list[str]:
    """Why ``config`` cannot train its pre-quantized base model as it asks (``[]`` for a plain model)."""
    model = config.model.name_or_path
    method = quant_method(model)
    if method is None:
        return []
    label = BACKENDS[method].label if method in BACKENDS else method
    what = f"model.name_or_path: {model!r} is a pre-quantized {label} checkpoint (config.json quantization_config)"
    found = []
    quantization = config.one("quantization")
    if quantization is not None:
        found.append(
            f"quantization: {what}, which cannot be quantized again with {quantization.name}; remove the "
            "quantization section (transformers loads the checkpoint with its own quantization)"
        )
    adapter = config.one("adapter")
    if adapter is not None and adapter.component.saves_full_model:
        found.append(
            f"adapter.method: {what}: its quantized weights cannot be trained with {adapter.name} (their packed "
            "integer weights take no gradient steps); train an adapter such as lora on it, or start from the "
            "unquantized model to tune it whole"
        )
    elif adapter is not None and getattr(adapter.options, "init", None) in ("pissa", "loftq"):
        found.append(
            f"adapter.init: {what}; {adapter.options.init} rewrites the base weights, which a quantized checkpoint "
            "cannot hold; use init: default"
        )
    install = missing_backend(method)
    if install:
        found.append(
            f"model.name_or_path: {what}; transformers loads it with its backend, which is not installed: {install}"
        )
    return found
