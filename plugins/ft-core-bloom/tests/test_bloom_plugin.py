"""ft-core-bloom: registration, family detection and a tiny BLOOM fine-tune."""

from __future__ import annotations

import ft_core_bloom
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light


def test_registers_the_family(make_plugins):
    plugins = make_plugins(ft_core_bloom)
    family = plugins.get("model_family", "bloom")
    assert family.model_types == ("bloom",) and family.architectures == ("BloomForCausalLM",)
    assert family.default_template is None and family.templates == ()
    assert family.decoder_layers == "transformer.h" and not family.trust_remote_code
    assert family.lora_targets == ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
    mine = [
        n
        for n in plugins.names("chat_template")
        if plugins.registration("chat_template", n).distribution == "plugin-under-test"
    ]
    assert mine == []  # no chat template of its own


def test_import_light():
    check_import_light("ft_core_bloom")


def test_family_detection_from_config_json(make_plugins):
    plugins = make_plugins(ft_core_bloom)
    found = [
        n
        for n in plugins.names("model_family")
        if plugins.get("model_family", n).covers("bloom", ["BloomForCausalLM"])
    ]
    assert found == ["bloom"]


def test_tiny_finetune(tmp_path):
    """A base model trains with a generic template: ``alpaca`` (from ft-core-templates-generic)."""
    manifest = check_family_finetunes(
        ft_core_bloom, "bloom", model_type="bloom", tmp_path=tmp_path, run_overrides=("template.name=alpaca",)
    )
    assert manifest["template"]["name"] == "alpaca"
    assert manifest["model_family"]["model_type"] == "bloom"
