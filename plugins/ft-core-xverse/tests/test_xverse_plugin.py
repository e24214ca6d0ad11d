"""ft-core-xverse: registration, ``xverse`` against XVERSE-13B-Chat's Python prompt builder, family detection and
the remote-code switch (XVERSE has no transformers architecture: no tiny fine-tune)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_xverse
from ft_core.api import Conversation, DataError, FtCoreError, Message
from ft_core.testing import run_config, save_tiny_model_dir
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

TEMPLATE = ft_core_xverse.XVERSE_TEMPLATE
EOS = "<|endoftext|>"


def build_chat_text(messages: list[Message], add_generation_prompt: bool) -> str:
    """XVERSE-13B-Chat ``_build_chat_input`` as text (no history truncation): a user turn is
    ``"Human: {content}\\n\\n"`` (plus ``"Assistant: "`` when it is the last message), an assistant turn
    ``"Assistant: {content}"`` followed by ``eos_token_id``; any other role raises."""
    text = ""
    for i, message in enumerate(messages):
        if message.role == "user":
            text += f"Human: {message.content}\n\n"
            if i == len(messages) - 1 and add_generation_prompt:
                text += "Assistant: "
        elif message.role == "assistant":
            text += f"Assistant: {message.content}" + EOS
        else:
            raise ValueError(f"message role not supported yet: {message.role}")
    return text


def _renderings(conversation: Conversation) -> list[tuple[list[Message], bool]]:
    messages = conversation.messages
    return [
        (messages, False),
        *[(messages[:i], True) for i, m in enumerate(messages) if m.role == "assistant"],
    ]


def _without_system() -> list[Conversation]:
    return [c for c in golden_conversations() if all(m.role != "system" for m in c.messages)]


def test_registers_family_and_template(make_plugins):
    plugins = make_plugins(ft_core_xverse)
    family = plugins.get("model_family", "xverse")
    assert family.model_types == ("xverse",) and family.architectures == ("XverseForCausalLM",)
    assert family.trust_remote_code and family.default_template == "xverse"
    assert family.decoder_layers == "model.layers" and "gate_proj" in family.lora_targets
    assert plugins.get("chat_template", "xverse").special_tokens["eos_token"] == EOS


def test_import_light():
    check_import_light("ft_core_xverse")


def test_renders_like_build_chat_input():
    conversations = _without_system()
    assert len(conversations) >= 3
    for conversation in conversations:
        for messages, prompt in _renderings(conversation):
            assert render_template(TEMPLATE, messages, add_generation_prompt=prompt) == build_chat_text(
                messages, prompt
            ), (conversation.source, prompt)


def test_has_no_system_role_like_the_model():
    with pytest.raises(ValueError):
        build_chat_text([Message("system", "s"), Message("user", "q")], True)
    with pytest.raises(DataError, match="no role system"):
        render_template(TEMPLATE, [Message("system", "s"), Message("user", "q")])


def test_trained_spans_are_answer_and_eos():
    for conversation in _without_system():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        assert [span for _, span in trained_texts(TEMPLATE, conversation)] == [a + EOS for a in answers]


def test_official_check_of_the_kit():
    """The kit's check with the Jinja as its own reference: renders the golden conversations (the system ones are
    refused, as by the model's code), trains exactly answer + EOS."""
    check_official_template(TEMPLATE, TEMPLATE.jinja, name="xverse")


def test_family_detection_from_config_json(make_plugins):
    plugins = make_plugins(ft_core_xverse)
    found = [
        n
        for n in plugins.names("model_family")
        if plugins.get("model_family", n).covers("xverse", ["XverseForCausalLM"])
    ]
    assert found == ["xverse"]


def test_needs_trust_remote_code(tmp_path, make_config):
    folder = Path(save_tiny_model_dir(str(tmp_path / "xverse")))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="xverse", architectures=["XverseForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    path = make_config(model={"name_or_path": str(folder)}, template="xverse")
    with pytest.raises(FtCoreError, match=r"model\.trust_remote_code: true"):
        run_config(path, ft_core_xverse)
