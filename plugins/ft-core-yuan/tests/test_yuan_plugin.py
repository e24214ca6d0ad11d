"""ft-core-yuan: registration, ``yuan`` against its reference format, family detection and the remote-code switch
(Yuan 2.0 has no transformers architecture: no tiny fine-tune)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_yuan
from ft_core.api import Conversation, FtCoreError, Message
from ft_core.testing import run_config, save_tiny_model_dir
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

TEMPLATE = ft_core_yuan.YUAN_TEMPLATE


def reference_text(messages: list[Message]) -> str:
    """LLaMA-Factory's ``yuan`` template as text: the system text first (its default system formatter is
    ``{{content}}``), then ``{user}<sep>`` and ``{answer}<eod>\\n`` per turn. The generation prompt adds nothing
    (``<sep>`` after the question is the prompt, as on Yuan2-2B-hf's model card)."""
    text = ""
    for message in messages:
        if message.role == "system":
            text += message.content
        elif message.role == "user":
            text += message.content + "<sep>"
        else:
            text += message.content + "<eod>\n"
    return text


def _renderings(conversation: Conversation) -> list[tuple[list[Message], bool]]:
    messages = conversation.messages
    return [
        (messages, False),
        *[(messages[:i], True) for i, m in enumerate(messages) if m.role == "assistant"],
    ]


def test_registers_family_and_template(make_plugins):
    plugins = make_plugins(ft_core_yuan)
    family = plugins.get("model_family", "yuan2")
    assert family.model_types == ("yuan",) and family.architectures == ("YuanForCausalLM",)
    assert family.trust_remote_code and family.default_template == "yuan"
    assert plugins.get("chat_template", "yuan").stop_words == ("<eod>",)


def test_import_light():
    check_import_light("ft_core_yuan")


def test_renders_like_the_reference():
    for conversation in golden_conversations():
        for messages, prompt in _renderings(conversation):
            assert render_template(TEMPLATE, messages, add_generation_prompt=prompt) == reference_text(
                messages
            )
    assert render_template(TEMPLATE, [Message("user", "请问1+1等于几？")], add_generation_prompt=True) == (
        "请问1+1等于几？<sep>"
    )


def test_trained_spans_are_answer_and_eod():
    for conversation in golden_conversations():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        assert [span for _, span in trained_texts(TEMPLATE, conversation)] == [a + "<eod>\n" for a in answers]


def test_official_check_of_the_kit():
    check_official_template(TEMPLATE, TEMPLATE.jinja, name="yuan")


def test_family_detection_from_config_json(make_plugins):
    plugins = make_plugins(ft_core_yuan)
    found = [
        n
        for n in plugins.names("model_family")
        if plugins.get("model_family", n).covers("yuan", ["YuanForCausalLM"])
    ]
    assert found == ["yuan2"]


def test_needs_trust_remote_code(tmp_path, make_config):
    folder = Path(save_tiny_model_dir(str(tmp_path / "yuan2")))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="yuan", architectures=["YuanForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    path = make_config(model={"name_or_path": str(folder)}, template="yuan")
    with pytest.raises(FtCoreError, match=r"model\.trust_remote_code: true"):
        run_config(path, ft_core_yuan)
