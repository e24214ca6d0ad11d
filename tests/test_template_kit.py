"""The template exactness kit (ft_core.testing.templates) and the generated reference docs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ft_core.api import ChatTemplate, Message
from ft_core.api.toolcalls import hermes, prefixed_json, tagged_json
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)
from ft_core.testing.tiny import CHATML_JINJA

CHATML = ChatTemplate(
    jinja=CHATML_JINJA, stop_words=("<|im_end|>",), special_tokens={"eos_token": "<|im_end|>"}
)


def test_identical_templates_pass() -> None:
    check_official_template(CHATML, CHATML_JINJA, name="chatml")


def test_a_different_rendering_fails_naming_the_conversation() -> None:
    official = CHATML_JINJA.replace("'\n' + message['content']", "':\n' + message['content']")
    with pytest.raises(AssertionError, match=r"template 'chatml', conversation 'golden:system-two-turns'"):
        check_official_template(CHATML, official, name="chatml")


def test_a_different_generation_prompt_fails() -> None:
    official = CHATML_JINJA.replace(
        "'<|im_start|>assistant\n' }}{% endif %}", "'<|im_start|>assistant\n\n' }}{% endif %}"
    )
    with pytest.raises(AssertionError, match="generation prompt before message"):
        check_official_template(CHATML, official, name="chatml")


def test_a_template_without_end_marker_in_the_trained_span_fails() -> None:
    # The turn ends with a marker the template does not declare: stop word and EOS missing from the span.
    template = replace(CHATML, stop_words=("<|eot|>",), special_tokens={"eos_token": "</s>"})
    with pytest.raises(AssertionError, match="does not end with the turn's end marker"):
        check_official_template(template, CHATML_JINJA, name="chatml")


def test_both_refusing_a_conversation_is_agreement() -> None:
    no_system = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}" + CHATML_JINJA
    )
    check_official_template(replace(CHATML, jinja=no_system), no_system, name="nosys")
    with pytest.raises(AssertionError, match="renders differently"):
        check_official_template(CHATML, no_system, name="chatml")  # ft-core renders what the official refuses


def test_golden_conversations_cover_tools_and_reasoning_on_request() -> None:
    plain = golden_conversations()
    assert not any(c.tools for c in plain) and not any(m.reasoning for c in plain for m in c.messages)
    assert any(c.tools for c in golden_conversations(tools=True))
    assert any(m.reasoning for c in golden_conversations(reasoning=True) for m in c.messages)
    assert any(any(ord(ch) > 127 for m in c.messages for ch in m.content) for c in plain)


def test_render_template_uses_the_templates_tokens_and_kwargs() -> None:
    jinja = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{% if shout %}!{% endif %}"
    template = ChatTemplate(jinja=jinja, special_tokens={"bos_token": "<B>"}, template_kwargs={"shout": True})
    assert render_template(template, [Message("user", "hi")]) == "<B>hi!"
    assert render_template(template, [Message("user", "hi")], shout=False) == "<B>hi"


def test_trained_texts_are_the_assistant_turns() -> None:
    conversation = golden_conversations()[0]
    assert [span for _, span in trained_texts(CHATML, conversation)] == [
        "The capital of France is Paris.<|im_end|>\n",
        "Rome.<|im_end|>\n",
    ]


@pytest.mark.parametrize(
    ("parser", "text", "content", "calls"),
    [
        (
            hermes,
            'Sure.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>',
            "Sure.",
            [("f", {"x": 1})],
        ),
        (hermes, "<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", []),
        (prefixed_json("[TOOL_CALLS]"), '[TOOL_CALLS] [{"name": "g", "arguments": {}}]', "", [("g", {})]),
        (
            prefixed_json("", ("parameters",)),
            '{"name": "h", "parameters": {"q": "a"}}',
            "",
            [("h", {"q": "a"})],
        ),
        (
            tagged_json("<|tool_call|>", "<|/tool_call|>"),
            '<|tool_call|>[{"name": "k", "arguments": "{\\"n\\": 2}"}]<|/tool_call|>',
            "",
            [("k", {"n": 2})],
        ),
    ],
)
def test_tool_call_parsers(parser: Any, text: str, content: str, calls: list[tuple[str, Any]]) -> None:
    parsed_content, parsed = parser(text)
    assert parsed_content == content
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in parsed] == calls
