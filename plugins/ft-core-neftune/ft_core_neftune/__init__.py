"""ft-core plugin: NEFTune noisy embeddings (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction
Finetuning"), built from lifecycle hooks alone.

The plugin registers one config section, ``neftune`` (``alpha: null`` = off). When ``alpha`` is set, the policy
model's input embeddings get a forward hook (``ft_model_ready``) that, in training mode only, adds uniform noise
in ``[-m, m]`` with ``m = alpha / sqrt(seq_len * hidden_dim)``; the hook is removed when training ends
(``ft_after_train``, which also records ``neftune_alpha`` in the run's metrics) or the run fails or is cancelled
(``ft_run_event``). No model patch, stage or trainer is involved.

Import-light: torch is imported by the hook when it first runs, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ConfigSection, Register, RunContext, RunEvent, hookimpl
from ft_core_neftune.noise import NeftuneOptions, attach, attached, detach

__all__ = ["SECTION", "NeftuneOptions", "attach", "attached", "detach"]

#: The config section this plugin adds.
SECTION = "neftune"


@hookimpl
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    register(
        SECTION,
        ConfigSection(
            schema=NeftuneOptions,
            description="NEFTune: uniform noise on the input embeddings while training (alpha: null = off)",
        ),
    )


@hookimpl
def ft_model_ready(model: Any, run: RunContext, role: str) -> None:
    options: NeftuneOptions = run.config.section(SECTION)
    if role != "policy" or options.alpha is None:
        return
    attach(model, options.alpha, key=str(run.run_dir))


@hookimpl
def ft_after_train(trainer: Any, run: RunContext, metrics: dict[str, Any]) -> None:
    alpha = detach(str(run.run_dir))
    if alpha is not None:
        metrics["neftune_alpha"] = alpha


@hookimpl
def ft_run_event(event: RunEvent) -> None:
    if event.kind in ("finished", "failed", "cancelled"):
        detach(event.run_dir)
