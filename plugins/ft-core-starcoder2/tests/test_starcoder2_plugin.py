"""Tests of ft-core-starcoder2: registration, a tiny fine-tune, import-lightness."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_starcoder2
from ft_core.api import ModelFamily
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_starcoder2, distribution="ft-core-starcoder2")


def test_registers_the_family_without_templates(plugins: Any) -> None:
    family = plugins.get("model_family", "starcoder2")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("starcoder2",)
    assert family.covers("x", ["Starcoder2ForCausalLM"])
    assert family.default_template is None and family.templates == ()
    assert plugins.names("chat_template") == []


def test_family_finetunes_a_tiny_model(tmp_path: Path) -> None:
    """3 LoRA steps on a tiny random-init StarCoder2 with a generic template (`chatml`): detected as
    `starcoder2`, and `targets: all` is exactly the family's projections (q/k/v/o, c_fc, c_proj)."""
    check_family_finetunes(ft_core_starcoder2, "starcoder2", model_type="starcoder2", tmp_path=tmp_path)
    adapter = json.loads(next((tmp_path / "run-starcoder2").rglob("adapter_config.json")).read_text())
    assert set(adapter["target_modules"]) == set(ft_core_starcoder2.STARCODER2_FAMILY.lora_targets or ())


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_starcoder2")
