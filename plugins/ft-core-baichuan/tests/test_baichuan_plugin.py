"""ft-core-baichuan: registration, ``baichuan2`` against Baichuan2's Python prompt builder, family detection and
the remote-code switch (Baichuan has no transformers architecture: no tiny fine-tune)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_baichuan
from ft_core.api import Conversation, FtCoreError, Message
from ft_core.testing import run_config, save_tiny_model_dir
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

TEMPLATE = ft_core_baichuan.BAICHUAN2_TEMPLATE


def build_chat_text(messages: list[Message], add_generation_prompt: bool) -> str:
    """Baichuan2-7B-Chat ``generation_utils.build_chat_input`` as text (no history truncation): the system content,
    then per message ``user_token_id`` (195, ``<reserved_106>``) or ``assistant_token_id`` (196,
    ``<reserved_107>``) followed by ``tokenizer.encode(content)`` (the tokenizer adds no BOS/EOS), and the assistant
    token when the last message is not the assistant's (generation)."""
    system, text = "", ""
    for i, message in enumerate(messages):
        if message.role == "system":
            assert i == 0
            system = message.content
            continue
        text += ("<reserved_106>" if message.role == "user" else "<reserved_107>") + message.content
    if add_generation_prompt and messages[-1].role != "assistant":
        text += "<reserved_107>"
    return system + text


def _renderings(conversation: Conversation) -> list[tuple[list[Message], bool]]:
    messages = conversation.messages
    return [
        (messages, False),
        *[(messages[:i], True) for i, m in enumerate(messages) if m.role == "assistant"],
    ]


def test_registers_family_and_template(make_plugins):
    plugins = make_plugins(ft_core_baichuan)
    family = plugins.get("model_family", "baichuan2")
    assert family.model_types == ("baichuan",) and "BaichuanForCausalLM" in family.architectures
    assert family.trust_remote_code and family.default_template == "baichuan2"
    assert family.lora_targets == ("W_pack", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert plugins.get("chat_template", "baichuan2").stop_words == ("<reserved_106>",)


def test_import_light():
    check_import_light("ft_core_baichuan")


def test_renders_like_build_chat_input():
    for conversation in golden_conversations():
        for messages, prompt in _renderings(conversation):
            assert render_template(TEMPLATE, messages, add_generation_prompt=prompt) == build_chat_text(
                messages, prompt
            ), (conversation.source, prompt)
    text = render_template(
        TEMPLATE,
        [Message("system", "S"), Message("user", "问"), Message("assistant", "答")],
        add_generation_prompt=False,
    )
    assert text == "S<reserved_106>问<reserved_107>答"


def test_trained_spans_are_the_answers():
    for conversation in golden_conversations():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        # No end marker: the next user token (a stop word) ends each answer, EOS the last one.
        ends = ["<reserved_106>"] * (len(answers) - 1) + ["</s>"]
        assert [span for _, span in trained_texts(TEMPLATE, conversation)] == [
            a + end for a, end in zip(answers, ends, strict=True)
        ]


def test_rejects_a_late_system_message_and_unknown_roles():
    from ft_core.api import DataError

    with pytest.raises(DataError, match="system message only first"):
        render_template(TEMPLATE, [Message("user", "q"), Message("system", "s")])
    with pytest.raises(DataError, match="no role tool"):
        render_template(TEMPLATE, [Message("user", "q"), Message("tool", "r")])


def test_official_check_of_the_kit():
    check_official_template(TEMPLATE, TEMPLATE.jinja, name="baichuan2")


@pytest.mark.parametrize("architecture", ["BaichuanForCausalLM", "BaiChuanForCausalLM"])
def test_family_detection_from_config_json(make_plugins, architecture):
    plugins = make_plugins(ft_core_baichuan)
    found = [
        n
        for n in plugins.names("model_family")
        if plugins.get("model_family", n).covers("baichuan", [architecture])
    ]
    assert found == ["baichuan2"]


def test_needs_trust_remote_code(tmp_path, make_config):
    folder = Path(save_tiny_model_dir(str(tmp_path / "baichuan2")))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="baichuan", architectures=["BaichuanForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    path = make_config(model={"name_or_path": str(folder)}, template="baichuan2")
    with pytest.raises(FtCoreError, match=r"model\.trust_remote_code: true"):
        run_config(path, ft_core_baichuan)
