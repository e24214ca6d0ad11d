"""ft-core-falcon: registration, the ``falcon`` template against its reference format, family detection and a
tiny Falcon fine-tune."""

from __future__ import annotations

import pytest

import ft_core_falcon
from ft_core.api import Conversation, DataError, Message
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

TEMPLATE = ft_core_falcon.FALCON_TEMPLATE
EOS = "<|endoftext|>"


def llamafactory_falcon(messages: list[Message]) -> str:
    """LLaMA-Factory's ``falcon`` template as text, with ft-core's two deliberate differences:

    - a system message becomes falcon-180B-chat's ``System: {system}\\n`` line (LLaMA-Factory's default system
      formatter pastes the bare text before ``User:``, which is no Falcon format);
    - every answer ends with EOS before its ``\\n`` (LLaMA-Factory's ``efficient_eos`` trains EOS once, at the
      next turn's first token and at the end; writing it into the turn trains the same stop signal per answer).
    """
    text = ""
    for message in messages:
        if message.role == "system":
            text += f"System: {message.content}\n"
        elif message.role == "user":
            text += f"User: {message.content}\nFalcon:"
        else:
            text += message.content + EOS + "\n"
    return text


def _renderings(conversation: Conversation) -> list[tuple[list[Message], bool]]:
    messages = conversation.messages
    return [
        (messages, False),
        *[(messages[:i], True) for i, m in enumerate(messages) if m.role == "assistant"],
    ]


def test_registers_family_and_template(make_plugins):
    plugins = make_plugins(ft_core_falcon)
    family = plugins.get("model_family", "falcon")
    assert family.model_types == ("falcon",) and family.default_template == "falcon"
    assert family.decoder_layers == "transformer.h" and not family.trust_remote_code
    assert family.lora_targets == ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
    assert plugins.get("chat_template", "falcon").special_tokens == {"eos_token": EOS}


def test_import_light():
    check_import_light("ft_core_falcon")


def test_renders_like_the_reference():
    for conversation in golden_conversations():
        for messages, prompt in _renderings(conversation):
            assert render_template(TEMPLATE, messages, add_generation_prompt=prompt) == llamafactory_falcon(
                messages
            )
    text = render_template(
        TEMPLATE,
        [
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("user", "Bye"),
        ],
        add_generation_prompt=True,
    )
    assert text == f"System: Be brief.\nUser: Hi\nFalcon:Hello{EOS}\nUser: Bye\nFalcon:"


def test_trained_spans_are_answer_eos_newline():
    for conversation in golden_conversations():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        assert [span for _, span in trained_texts(TEMPLATE, conversation)] == [
            a + EOS + "\n" for a in answers
        ]


def test_official_check_of_the_kit():
    check_official_template(TEMPLATE, TEMPLATE.jinja, name="falcon")


def test_rejects_unknown_roles():
    with pytest.raises(DataError, match="no role tool"):
        render_template(TEMPLATE, [Message("user", "q"), Message("tool", "r")])


def test_family_detection_from_config_json(make_plugins):
    plugins = make_plugins(ft_core_falcon)
    found = [n for n in plugins.names("model_family") if plugins.get("model_family", n).covers("falcon", [])]
    assert found == ["falcon"]


def test_tiny_finetune(tmp_path):
    manifest = check_family_finetunes(
        ft_core_falcon, "falcon", model_type="falcon", template="falcon", tmp_path=tmp_path
    )
    assert manifest["model_family"]["model_type"] == "falcon"
