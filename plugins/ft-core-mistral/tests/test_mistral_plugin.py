"""Tests of ft-core-mistral: registration, exactness of every template against the official Jinja (and, where
ft-core deliberately differs, exactly how and why), the tool-call format, import-lightness and tiny fine-tunes."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ft_core_mistral
from ft_core.api import IGNORE_INDEX, ChatTemplate, Conversation, Message, ModelFamily
from ft_core.testing import make_encoder
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)
from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_tokenizer
from ft_core_mistral import parse_mistral_tool_calls

OFFICIAL = Path(__file__).parent / "official"
TEMPLATES = ("mistral", "mistral_nemo", "mistral_small", "mistral_tekken", "mistral_v3")
TOOL_TEMPLATES = ("mistral_v3", "mistral_tekken")


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_mistral, distribution="ft-core-mistral")


def _official(name: str) -> str:
    return (OFFICIAL / f"{name}.jinja").read_text(encoding="utf-8")


@dataclass
class ToolResult(Message):
    """A tool result carrying the id of its call (``tool_call_id``), which the official v3 / tekken templates
    require; ft-core's :class:`Message` has no such field, so ft-core's templates number calls themselves."""

    tool_call_id: str = ""

    def to_hf(self) -> dict[str, Any]:
        return {**super().to_hf(), "tool_call_id": self.tool_call_id}


def _call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        call["id"] = call_id
    return call


def _no_system(conversations: list[Conversation]) -> list[Conversation]:
    return [c for c in conversations if not any(m.role == "system" for m in c.messages)]


def _with_system(conversations: list[Conversation]) -> list[Conversation]:
    return [c for c in conversations if any(m.role == "system" for m in c.messages)]


_WEATHER = golden_conversations(tools=True)[-1].tools

#: Mistral-specific conversations: contents with surrounding whitespace, a longer exchange.
EXTRA = [
    Conversation(
        [Message("user", "  padded question \n"), Message("assistant", " padded answer ")],
        source="mistral:padded",
    ),
    Conversation(
        [
            Message("user", "1"),
            Message("assistant", "one"),
            Message("user", "2"),
            Message("assistant", "two"),
            Message("user", "3"),
            Message("assistant", "three"),
        ],
        source="mistral:three-turns",
    ),
    Conversation(
        [
            Message("system", "Réponds en français."),
            Message("user", "Hello"),
            Message("assistant", "Bonjour"),
            Message("user", "Thanks"),
            Message("assistant", "Merci"),
            Message("user", "Bye"),
            Message("assistant", "Au revoir"),
        ],
        source="mistral:system-three-turns",
    ),
]

#: Tool conversations with the 9-character ids the official templates require.
TOOLS_WITH_IDS = [
    Conversation(
        [
            Message("user", "What is the weather in Paris?"),
            Message("assistant", "", tool_calls=[_call("get_weather", {"city": "Paris"}, "abcDEF123")]),
            ToolResult("tool", '{"temperature": 21, "sky": "clear"}', tool_call_id="abcDEF123"),
            Message("assistant", "It is 21 degrees and clear in Paris."),
        ],
        tools=_WEATHER,
        source="mistral:tools-with-ids",
    ),
    Conversation(
        [
            Message("user", "Weather in Köln?"),
            Message("assistant", "", tool_calls=[_call("get_weather", {"city": "Köln"}, "k0ln12345")]),
            ToolResult("tool", '{"temperature": 8}', tool_call_id="k0ln12345"),
            Message("assistant", "8 degrees in Köln."),
            Message("user", "And in Paris and Rome?"),
            Message(
                "assistant",
                "",
                tool_calls=[
                    _call("get_weather", {"city": "Paris"}, "paris0001"),
                    _call("get_weather", {"city": "Rome"}, "rome00002"),
                ],
            ),
            ToolResult("tool", '{"temperature": 21}', tool_call_id="paris0001"),
            ToolResult("tool", '{"temperature": 25}', tool_call_id="rome00002"),
            Message("assistant", "21 in Paris, 25 in Rome."),
        ],
        tools=_WEATHER,
        source="mistral:tools-multi-turn-parallel",
    ),
]

#: The tool conversations with a system prompt.
SYSTEM_TOOLS = [
    Conversation(
        [Message("system", "Answer in one sentence."), *c.messages],
        tools=c.tools,
        source=f"{c.source}+system",
    )
    for c in TOOLS_WITH_IDS
]

#: The edits that turn the official v3 / tekken Jinja into ft-core's, each marked ``ft-core:`` in the template.
#: (1) The official template writes the system prompt only into a user message that is the *last* message, i.e.
#: into generation prompts; a conversation ending with an answer renders without it, so training would never
#: see the system prompt the model is prompted with. ft-core also writes it into the user turn right before the
#: final answer: each answer is then trained exactly as the official generation prompt shows it (the template is
#: declared not prefix-stable, so every answer of a multi-turn conversation is its own sample).
#: (2) The official template raises on tool calls / results without 9-character ids; ft-core's conversations
#: carry none, so calls get ``call00001``, ``call00002``... and each result the id of the call it answers.
EDITS = [
    (
        "        {%- if loop.last and system_message is defined %}\n",
        "        {#- ft-core: also in the user turn right before the final assistant turn, where inference shows it #}\n"
        '        {%- if system_message is defined and (loop.last or (loop.revindex0 == 1 and loop_messages[-1]["role"]'
        ' == "assistant")) %}\n',
    ),
    (
        "\n{{- bos_token }}\n",
        "\n{#- ft-core: tool calls and results without ids get deterministic ones (call00001, call00002, ...) #}\n"
        "{%- set ids = namespace(calls=[], results=0) %}\n{{- bos_token }}\n",
    ),
    (
        "            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n",
        '            {%- set call_id = tool_call.id if tool_call.id is defined else "call" + "%05d"|format(ids.calls|'
        "length + 1) %}\n"
        "            {%- set ids.calls = ids.calls + [call_id] %}\n"
        "            {%- if call_id|length != 9 %}\n",
    ),
    (
        "            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n",
        "            {{- ', \"id\": \"' + call_id + '\"}' }}\n",
    ),
    (
        "        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n",
        "        {%- if message.tool_call_id is defined %}\n"
        "            {%- set result_id = message.tool_call_id %}\n"
        "        {%- elif ids.results < ids.calls|length %}\n"
        "            {%- set result_id = ids.calls[ids.results] %}\n"
        "        {%- else %}\n"
        '            {%- set result_id = "call" + "%05d"|format(ids.results + 1) %}\n'
        "        {%- endif %}\n"
        "        {%- set ids.results = ids.results + 1 %}\n"
        "        {%- if result_id|length != 9 %}\n",
    ),
    (
        "        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n",
        "        {{- '\"call_id\": \"' + result_id + '\"}[/TOOL_RESULTS]' }}\n",
    ),
]

#: Mistral Small: the official template always dates its default system prompt with ``strftime_now`` (today);
#: ft-core takes the date from ``date_string`` when given (default 2025-01-30), so renders are reproducible.
SMALL_EDIT = (
    '{%- set today = strftime_now("%Y-%m-%d") %}\n',
    "{#- ft-core: the date comes from date_string when given (renders are then reproducible) #}\n"
    "{%- if date_string is defined %}\n    {%- set today = date_string %}\n{%- else %}\n    {%- set today = "
    'strftime_now("%Y-%m-%d") %}\n{%- endif %}\n',
)


def test_registers_family_and_templates(plugins: Any) -> None:
    family = plugins.get("model_family", "mistral")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("mistral", "mixtral")
    assert family.covers("mixtral") and family.covers("unknown", ["MistralForCausalLM"])
    assert family.default_template == "mistral_v3"
    assert set(family.templates) == set(TEMPLATES)
    assert family.decoder_layers == "model.layers" and family.lora_targets is None
    assert family.patches == ("liger",) and not family.trust_remote_code
    assert "mistralai/Mistral-Nemo-Instruct-2407" in family.models
    assert plugins.names("chat_template") == sorted(TEMPLATES)
    for name in TEMPLATES:
        template = plugins.get("chat_template", name)
        assert isinstance(template, ChatTemplate) and template.source and template.description
        assert template.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
        assert template.stop_words == ()  # every answer ends with EOS
        assert template.supports_tools == (name in (*TOOL_TEMPLATES, "mistral_nemo"))
    assert plugins.get("chat_template", "mistral_nemo") == plugins.get("chat_template", "mistral_tekken")
    for name in ("mistral", "mistral_small"):
        assert plugins.get("chat_template", name).prefix_stable
    for name in TOOL_TEMPLATES:
        template = plugins.get("chat_template", name)
        assert not template.prefix_stable and template.tokenizer_template_may_differ
    small = plugins.get("chat_template", "mistral_small")
    assert small.template_kwargs == {"date_string": "2025-01-30"}
    assert small.default_system is not None and "The current date is 2025-01-30." in small.default_system


def test_mistral_is_the_official_one(plugins: Any) -> None:
    template = plugins.get("chat_template", "mistral")
    official = _official("mistral")
    assert template.jinja == official  # verbatim
    check_official_template(
        template, official, name="mistral", conversations=[*golden_conversations(), *EXTRA]
    )
    # v1: the system prompt joins the FIRST user turn, so the template is prefix-stable.
    text = render_template(template, EXTRA[2].messages)
    assert text.startswith(
        "<s> [INST] Réponds en français.\n\nHello [/INST] Bonjour</s> [INST] Thanks [/INST]"
    )


def test_mistral_small_is_the_official_one_with_a_settable_date(plugins: Any) -> None:
    template = plugins.get("chat_template", "mistral_small")
    official = _official("mistral_small")
    assert official.replace(*SMALL_EDIT) == template.jinja  # the only difference
    # The official template with its clock read as 2025-01-30 (template variables cannot replace the sandbox's
    # strftime_now: transformers passes only plain data to templates).
    dated = official.replace('strftime_now("%Y-%m-%d")', '"2025-01-30"')
    assert dated.count('"2025-01-30"') == 1
    check_official_template(
        template, dated, name="mistral_small", conversations=[*golden_conversations(), *EXTRA]
    )
    text = render_template(template, [Message("user", "Hi")])
    assert text == f"<s>[SYSTEM_PROMPT]{template.default_system}[/SYSTEM_PROMPT][INST]Hi[/INST]"
    assert "The current date is 2024-12-24." in render_template(
        template, [Message("user", "Hi")], date_string="2024-12-24"
    )
    today = datetime.date.today().isoformat()
    assert f"The current date is {today}." in render_template(official, [Message("user", "Hi")])


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
def test_v3_and_tekken_differ_from_the_official_ones_only_by_the_marked_edits(
    plugins: Any, name: str
) -> None:
    official = _official(name)
    expected = official
    for old, new in EDITS:
        assert expected.count(old) == 1, old
        expected = expected.replace(old, new)
    assert plugins.get("chat_template", name).jinja == expected


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
def test_v3_and_tekken_render_like_the_official_ones_wherever_those_render_it(
    plugins: Any, name: str
) -> None:
    """Without a system prompt, and for tool calls that carry ids, ft-core renders exactly the official text."""
    template = plugins.get("chat_template", name)
    conversations = [*_no_system([*golden_conversations(), *EXTRA]), *TOOLS_WITH_IDS]
    check_official_template(template, _official(name), name=name, conversations=conversations)


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
def test_v3_and_tekken_train_each_answer_as_the_official_generation_prompt_shows_it(
    plugins: Any, name: str
) -> None:
    """With a system prompt: every generation prompt is the official one, and each trained answer follows exactly
    that prompt (the official rendering of a whole conversation would drop the system prompt)."""
    template = plugins.get("chat_template", name)
    official = _official(name)
    tokens = template.special_tokens
    for conversation in _with_system([*golden_conversations(), *EXTRA, *SYSTEM_TOOLS]):
        messages, tools = conversation.messages, conversation.tools
        answers = [i for i, m in enumerate(messages) if m.role == "assistant"]
        rows = trained_texts(template, conversation)
        assert len(rows) == len(answers)
        no_system = [m for m in messages if m.role != "system"]
        for (rendering, span), index in zip(rows, answers, strict=True):
            prompt = render_template(
                official, messages[:index], special_tokens=tokens, add_generation_prompt=True, tools=tools
            )
            # The official prompt holds the system prompt when the answer follows a user turn (not a tool result).
            assert (messages[0].content in prompt) == (messages[index - 1].role == "user")
            assert (
                render_template(template, messages[:index], add_generation_prompt=True, tools=tools) == prompt
            )
            assert rendering == prompt + span, conversation.source
            # The answer is written as the official template writes it (there without the system prompt).
            offset = index - 1
            before = render_template(
                official, no_system[:offset], special_tokens=tokens, add_generation_prompt=True, tools=tools
            )
            after = render_template(official, no_system[: offset + 1], special_tokens=tokens, tools=tools)
            assert span == after[len(before) :], (span, after[len(before) :])
        assert messages[0].content not in render_template(
            official, messages, special_tokens=tokens, tools=tools
        ), "the official template drops the system prompt from a conversation that ends with an answer"


def _tokenizer() -> Any:
    specials = [*DEFAULT_SPECIAL_TOKENS, "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"]
    return tiny_tokenizer(
        special_tokens=[*specials, "[TOOL_RESULTS]", "[/TOOL_RESULTS]"],
        chat_template=None,
        bos_token="<s>",
        eos_token="</s>",
    )


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
def test_v3_and_tekken_trained_tokens_are_exactly_the_answers(plugins: Any, name: str) -> None:
    """Encoded as a run does (one sample per answer where the rendering is not prefix-stable), the trained tokens
    decode to exactly the answers with their EOS."""
    template = plugins.get("chat_template", name)
    tokenizer = _tokenizer()
    encoder = make_encoder(
        tokenizer, template.jinja, prefix_stable=False, template_kwargs=dict(template.special_tokens)
    )
    for conversation in [*golden_conversations(tools=True), *EXTRA, *TOOLS_WITH_IDS, *SYSTEM_TOOLS]:
        rows = encoder.encode_supervised(conversation)
        trained = [tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]) for row in rows]
        assert "".join(trained) == "".join(span for _, span in trained_texts(template, conversation))
        answers = sum(m.role == "assistant" for m in conversation.messages)
        if conversation.source == "golden:system-two-turns":
            assert len(rows) == answers == 2  # not prefix-stable there: one sample per answer
        elif conversation.source in ("golden:no-system", "mistral:three-turns"):
            assert len(rows) == 1  # prefix-stable without a system prompt: one sample


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
def test_calls_without_ids_get_deterministic_ids(plugins: Any, name: str) -> None:
    template = plugins.get("chat_template", name)
    conversation = golden_conversations(tools=True)[-1]
    with pytest.raises(Exception, match="Tool call IDs should be alphanumeric strings with length 9"):
        render_template(
            _official(name), conversation.messages, special_tokens=template.special_tokens, tools=_WEATHER
        )
    text = render_template(template, conversation.messages, tools=conversation.tools)
    assert '"id": "call00001"}]</s>' in text and '"call_id": "call00001"}[/TOOL_RESULTS]' in text
    # Several calls: each result takes the id of the call it answers, in order.
    calls = [_call("get_weather", {"city": "Paris"}), _call("get_weather", {"city": "Rome"})]
    messages = [
        Message("user", "Paris and Rome?"),
        Message("assistant", "", tool_calls=calls),
        Message("tool", "21"),
        Message("tool", "25"),
        Message("assistant", "21 and 25."),
    ]
    text = render_template(template, messages, tools=_WEATHER)
    assert text.count('"id": "call00001"') == 1 and text.count('"id": "call00002"') == 1
    assert text.index('"content": 21, "call_id": "call00001"') < text.index(
        '"content": 25, "call_id": "call00002"'
    )


@pytest.mark.parametrize("name", TOOL_TEMPLATES)
def test_tool_calls_parse_back_from_the_trained_span(plugins: Any, name: str) -> None:
    template = plugins.get("chat_template", name)
    for conversation in [golden_conversations(tools=True)[-1], *TOOLS_WITH_IDS, *SYSTEM_TOOLS]:
        turns = [m for m in conversation.messages if m.role == "assistant"]
        spans = [span for _, span in trained_texts(template, conversation)]
        assert len(spans) == len(turns)
        for span, turn in zip(spans, turns, strict=True):
            content, calls = parse_mistral_tool_calls(span)
            if turn.tool_calls:
                assert content == ""
                assert [c["function"] for c in calls] == [c["function"] for c in turn.tool_calls]
                assert all(len(c["id"]) == 9 for c in calls)
            else:
                assert (content, calls) == (turn.content.strip(), [])


def test_tool_call_parser() -> None:
    calls = parse_mistral_tool_calls(
        '[TOOL_CALLS] [{"name": "f", "arguments": {"x": 1}, "id": "abcDEF123"}]</s>'
    )
    assert calls == (
        "",
        [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}, "id": "abcDEF123"}],
    )
    assert parse_mistral_tool_calls('[TOOL_CALLS][{"name": "f", "arguments": "{\\"x\\": 1}"}]')[1] == [
        {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    ]
    assert parse_mistral_tool_calls("Plain answer.</s>") == ("Plain answer.", [])
    assert parse_mistral_tool_calls("[TOOL_CALLS] not json") == ("[TOOL_CALLS] not json", [])
    assert parse_mistral_tool_calls('[TOOL_CALLS] [{"arguments": {}}]') == (
        '[TOOL_CALLS] [{"arguments": {}}]',
        [],
    )


def test_official_templates_refuse_odd_role_orders(plugins: Any) -> None:
    """The models' own rule (roles alternate after the optional system prompt) is kept."""
    odd = [Message("user", "a"), Message("user", "b"), Message("assistant", "c")]
    for name in ("mistral", *TOOL_TEMPLATES):
        with pytest.raises(Exception, match="roles must alternate"):
            render_template(plugins.get("chat_template", name), odd)


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_mistral")


@pytest.mark.parametrize(
    ("model_type", "template"), [("mistral", "mistral_v3"), ("mixtral", "mistral_tekken")]
)
def test_family_finetunes(tmp_path: Path, model_type: str, template: str) -> None:
    manifest = check_family_finetunes(
        ft_core_mistral, "mistral", model_type=model_type, template=template, tmp_path=tmp_path
    )
    assert manifest["model_family"]["name"] == "mistral"
