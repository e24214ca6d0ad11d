"""Fixtures of the ppo stage tests."""

from __future__ import annotations

from typing import Any

import pytest

from ft_core.testing import make_encoder


@pytest.fixture
def encoder(tiny_tokenizer: Any) -> Any:
    """``encoder(cutoff_len=1024)``: the run's Encoder for the tiny tokenizer and its ChatML template."""

    def make(cutoff_len: int = 1024) -> Any:
        return make_encoder(tiny_tokenizer, cutoff_len=cutoff_len)

    return make
