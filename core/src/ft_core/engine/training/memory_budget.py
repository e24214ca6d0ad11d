"""``training.memory_budget``: the GPU memory a run may plan for, and its peak against it.

The budget is GiB (``40.0``) or a share of the card (``"60%"``, as :func:`ft_core.api.config.normalize_memory_budget`
leaves it). The memory-dependent ``auto`` decisions (activation checkpointing, merged micro-steps) compare their
estimates with the smaller of the budget and the card's free memory, so that they pick the fastest mode that fits
the budget. Imports nothing heavy at module level.
"""

from __future__ import annotations

from ft_core.api.errors import ConfigError

GIB = 1024**3


def budget_bytes(setting: float | str | None, total_bytes: float) -> float | None:
    """The budget in bytes on a card of ``total_bytes``; ``None`` when no budget is set. Raises
    :class:`~ft_core.api.errors.ConfigError` when a budget in GiB is more than the card holds."""
    if setting is None:
        return None
    if isinstance(setting, str):
        return total_bytes * float(setting.removesuffix("%")) / 100
    budget = setting * GIB
    if budget > total_bytes:
        raise ConfigError(
            [
                f"training.memory_budget: {setting:g} GiB is more than this GPU's {total_bytes / GIB:.1f} GiB; "
                f"give at most {total_bytes / GIB:.1f}, a share of the card such as '60%', or null for its free "
                "memory"
            ]
        )
    return budget


def peak_gib() -> float | None:
    """The process's peak allocated GPU memory so far (GiB), or ``None`` when it used no CUDA GPU."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return round(torch.cuda.max_memory_allocated() / GIB, 2)


def over_budget(setting: float | str | None, peak: float | None, device: int = 0) -> str | None:
    """A warning when the run's peak (GiB) went past its budget (the estimates behind the ``auto`` decisions were
    short); ``None`` otherwise."""
    if setting is None or peak is None:
        return None
    import torch

    budget = budget_bytes(setting, float(torch.cuda.mem_get_info(device)[1])) or 0.0
    if peak * GIB <= budget:
        return None
    return (
        f"peak GPU memory {peak:.2f} GiB went past training.memory_budget ({budget / GIB:.2f} GiB): set "
        "training.gradient_checkpointing: true (or offload) or a smaller per_device_train_batch_size to stay "
        "within it"
    )
