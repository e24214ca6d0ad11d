"""Compatibility shims for the libraries underneath (transformers, peft)."""

from __future__ import annotations

import warnings


def quiet_upstream_warnings() -> None:
    """Silence library warnings users cannot act on (peft still calls a transformers method renamed in 5.x)."""
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
