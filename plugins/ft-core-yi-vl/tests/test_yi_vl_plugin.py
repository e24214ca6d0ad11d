"""ft-core-yi-vl: registration, ``yi_vl`` against Yi-VL's Python prompt builder, family detection by architecture
and the remote-code switch (Yi-VL has no transformers architecture: no tiny fine-tune)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_yi_vl
from ft_core.api import Conversation, FtCoreError, Message
from ft_core.testing import run_config, save_tiny_model_dir
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

TEMPLATE = ft_core_yi_vl.YI_VL_TEMPLATE

#: 01-ai/Yi ``VL/llava/conversation.py`` ``mm_default_conv.system``, copied independently of the plugin.
MM_DEFAULT_SYSTEM = (
    "This is a chat between an inquisitive human and an AI assistant. Assume the role of the AI assistant. Read all "
    "the images carefully, and respond to the human's questions with informative, helpful, detailed and polite "
    "answers. 这是一个好奇的人类和一个人工智能助手之间的对话。假设你扮演这个AI助手的角色。仔细阅读所有的图像，"
    "并对人类的问题做出信息丰富、有帮助、详细的和礼貌的回答。"
)


def get_prompt(system: str, messages: list[tuple[str, str | None]]) -> str:
    """``Conversation.get_prompt`` of 01-ai/Yi ``VL/llava/conversation.py`` (``SeparatorStyle.SINGLE``,
    ``sep="###"``), text-only messages."""
    sep = "###"
    ret = system + "\n\n" + sep + " "
    for role, message in messages:
        if message:
            ret += role + ": " + message + "\n" + sep + " "
        else:
            ret += role + ":"
    return ret


def reference(messages: list[Message], add_generation_prompt: bool) -> str:
    """A conversation as Yi-VL's code builds it: roles ``Human`` / ``Assistant``, the ``mm_default`` system unless
    one is given, and an empty assistant message (``None``) to prompt an answer."""
    system = messages[0].content if messages[0].role == "system" else MM_DEFAULT_SYSTEM
    turns = [m for m in messages if m.role != "system"]
    pairs: list[tuple[str, str | None]] = [
        ("Human" if m.role == "user" else "Assistant", m.content) for m in turns
    ]
    if add_generation_prompt:
        pairs.append(("Assistant", None))
    return get_prompt(system, pairs)


def _renderings(conversation: Conversation) -> list[tuple[list[Message], bool]]:
    messages = conversation.messages
    return [
        (messages, False),
        *[(messages[:i], True) for i, m in enumerate(messages) if m.role == "assistant"],
    ]


def test_registers_family_and_template(make_plugins):
    plugins = make_plugins(ft_core_yi_vl)
    family = plugins.get("model_family", "yi_vl")
    assert family.model_types == () and family.architectures == ("LlavaLlamaForCausalLM",)
    assert family.trust_remote_code and family.default_template == "yi_vl"
    template = plugins.get("chat_template", "yi_vl")
    assert template.stop_words == ("###",) and template.default_system == MM_DEFAULT_SYSTEM


def test_import_light():
    check_import_light("ft_core_yi_vl")


def test_renders_like_get_prompt():
    for conversation in golden_conversations():
        for messages, prompt in _renderings(conversation):
            assert render_template(TEMPLATE, messages, add_generation_prompt=prompt) == reference(
                messages, prompt
            ), (conversation.source, prompt)
    text = render_template(TEMPLATE, [Message("user", "Describe the cats.")], add_generation_prompt=True)
    assert text == MM_DEFAULT_SYSTEM + "\n\n### Human: Describe the cats.\n### Assistant:"


def test_trained_spans_end_with_the_separator():
    for conversation in golden_conversations():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        assert [span for _, span in trained_texts(TEMPLATE, conversation)] == [f" {a}\n### " for a in answers]


def test_official_check_of_the_kit():
    check_official_template(TEMPLATE, TEMPLATE.jinja, name="yi_vl")


@pytest.mark.parametrize(
    ("architectures", "expected"),
    [(["LlavaLlamaForCausalLM"], ["yi_vl"]), (["LlavaForConditionalGeneration"], [])],
)
def test_family_detection_by_architecture(make_plugins, architectures, expected):
    plugins = make_plugins(ft_core_yi_vl)
    found = [
        n
        for n in plugins.names("model_family")
        if plugins.get("model_family", n).covers("llava", architectures)
    ]
    assert found == expected


def test_needs_trust_remote_code(tmp_path, make_config):
    folder = Path(save_tiny_model_dir(str(tmp_path / "yi-vl")))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="llava", architectures=["LlavaLlamaForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    path = make_config(model={"name_or_path": str(folder)}, template="yi_vl")
    with pytest.raises(FtCoreError, match=r"model\.trust_remote_code: true"):
        run_config(path, ft_core_yi_vl)
