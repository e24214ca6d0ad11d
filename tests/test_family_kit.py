"""The family fine-tune kit (ft_core.testing.families) and model-family detection."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

import ft_core_llama
from ft_core.testing.families import check_family_finetunes, tiny_config


def test_tiny_config_shrinks_any_architecture() -> None:
    config = tiny_config("mixtral", 100)
    assert (config.hidden_size, config.num_hidden_layers, config.num_local_experts, config.vocab_size) == (
        32,
        2,
        4,
        100,
    )
    assert tiny_config("llama", 50, hidden_size=64).hidden_size == 64


def test_family_finetune_runs_and_checks_detection(tmp_path: Path) -> None:
    manifest = check_family_finetunes(
        ft_core_llama, "llama", model_type="llama", template="llama3", tmp_path=tmp_path
    )
    assert manifest["model_family"]["name"] == "llama" and manifest["template"]["name"] == "llama3"
    with pytest.raises(AssertionError, match="detected model family 'llama', expected 'qwen'"):
        check_family_finetunes(ft_core_llama, "qwen", model_type="llama", tmp_path=tmp_path / "again")


def test_an_architecture_entry_beats_a_generic_model_type(make_plugins) -> None:
    from ft_core.api import ModelFamily, hookimpl
    from ft_core.engine.models.loader import resolve_family

    @hookimpl
    def ft_register_model_families(register):
        register("vendor", ModelFamily(model_types=(), architectures=("VendorLlamaForCausalLM",)))

    vendor_plugin = ModuleType("vendor_family")
    vendor_plugin.ft_register_model_families = ft_register_model_families
    plugins = make_plugins(ft_core_llama, vendor_plugin)
    vendor = SimpleNamespace(model_type="llama", architectures=["VendorLlamaForCausalLM"])
    plain = SimpleNamespace(model_type="llama", architectures=["LlamaForCausalLM"])
    assert resolve_family(plugins, vendor) is plugins.get("model_family", "vendor")
    assert resolve_family(plugins, plain) is plugins.get("model_family", "llama")


def test_remote_code_models_ask_for_consent(tmp_path: Path) -> None:
    from ft_core.api.errors import FtCoreError
    from ft_core.engine.models.loader import require_remote_code_consent

    (tmp_path / "config.json").write_text(
        json.dumps(
            {"model_type": "baichuan", "auto_map": {"AutoConfig": "configuration_baichuan.BaichuanConfig"}}
        )
    )
    with pytest.raises(FtCoreError, match=r"set `model.trust_remote_code: true`"):
        require_remote_code_consent(str(tmp_path), trust_remote_code=False)
    require_remote_code_consent(str(tmp_path), trust_remote_code=True)
