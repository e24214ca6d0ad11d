"""ft-core-internlm: registration, ``intern2`` exactness against internlm2-chat-7b's Jinja, family detection and
the remote-code switch (InternLM2 has no transformers architecture: no tiny fine-tune)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_internlm
from ft_core.api import FtCoreError, Message
from ft_core.testing import run_config, save_tiny_model_dir
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

OFFICIAL = (Path(__file__).parent / "official" / "intern2.jinja").read_text(encoding="utf-8")


def test_registers_family_and_template(make_plugins):
    plugins = make_plugins(ft_core_internlm)
    family = plugins.get("model_family", "internlm2")
    assert family.model_types == ("internlm2",) and family.architectures == ("InternLM2ForCausalLM",)
    assert family.trust_remote_code and family.default_template == "intern2"
    assert family.lora_targets == ("wqkv", "wo", "w1", "w2", "w3")
    assert family.decoder_layers == "model.layers"
    template = plugins.get("chat_template", "intern2")
    assert template.stop_words == ("<|im_end|>",) and not template.supports_tools


def test_import_light():
    check_import_light("ft_core_internlm")


def test_intern2_is_the_official_template():
    assert ft_core_internlm.INTERN2_TEMPLATE.jinja == OFFICIAL  # verbatim
    check_official_template(ft_core_internlm.INTERN2_TEMPLATE, OFFICIAL, name="intern2")


def test_intern2_rendering():
    text = render_template(
        ft_core_internlm.INTERN2_TEMPLATE,
        [Message("system", "S"), Message("user", "Q"), Message("assistant", "A"), Message("user", "R")],
        add_generation_prompt=True,
    )
    assert text == (
        "<s><|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
        "<|im_start|>user\nR<|im_end|>\n<|im_start|>assistant\n"
    )
    for conversation in golden_conversations():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        spans = [span for _, span in trained_texts(ft_core_internlm.INTERN2_TEMPLATE, conversation)]
        assert spans == [a + "<|im_end|>\n" for a in answers]


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "internlm2", "architectures": ["InternLM2ForCausalLM"]},
        {"model_type": "internlm2_5", "architectures": ["InternLM2ForCausalLM"]},
    ],
)
def test_family_detection_from_config_json(make_plugins, config):
    plugins = make_plugins(ft_core_internlm)
    found = [
        name
        for name in plugins.names("model_family")
        if plugins.get("model_family", name).covers(config["model_type"], config["architectures"])
    ]
    assert found == ["internlm2"]


def test_needs_trust_remote_code(tmp_path, make_config):
    folder = Path(save_tiny_model_dir(str(tmp_path / "internlm2")))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="internlm2", architectures=["InternLM2ForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    path = make_config(model={"name_or_path": str(folder)}, template="intern2")
    with pytest.raises(FtCoreError, match=r"model\.trust_remote_code: true"):
        run_config(path, ft_core_internlm)
