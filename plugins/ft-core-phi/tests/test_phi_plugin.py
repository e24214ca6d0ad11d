"""Tests of ft-core-phi: registration, exactness of `phi` / `phi4` / `phi4_mini` against the official Jinja (and the
deliberate differences), the Phi-4-mini tool format, import-lightness."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_phi
from ft_core.api import ChatTemplate, Conversation, Message, ModelFamily
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

OFFICIAL = Path(__file__).parent / "official"
FINAL_EOS = "{% else %}{{ eos_token }}"


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_phi, distribution="ft-core-phi")


def _template(plugins: Any, name: str) -> ChatTemplate:
    return plugins.get("chat_template", name)


def _official(name: str) -> str:
    return (OFFICIAL / f"{name}.jinja").read_text()


def _without_final_eos(official: str) -> str:
    """The official Phi-3 / Phi-4-mini template minus the ``eos_token`` it writes after a whole conversation."""
    assert official.count(FINAL_EOS) == 1
    return official.replace(FINAL_EOS, "")


def test_registers_families_and_templates(plugins: Any) -> None:
    phi = plugins.get("model_family", "phi")
    assert isinstance(phi, ModelFamily)
    assert phi.model_types == ("phi",)
    assert phi.default_template is None and phi.templates == ()
    assert phi.lora_targets == ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2")
    phi3 = plugins.get("model_family", "phi3")
    assert phi3.model_types == ("phi3",)
    assert phi3.covers("x", ["Phi3ForCausalLM"]) and not phi3.covers("phi")
    assert phi3.default_template == "phi"
    assert phi3.templates == ("phi", "phi4", "phi4_mini")
    assert phi3.lora_targets == ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    assert plugins.names("chat_template") == ["phi", "phi4", "phi4_mini"]
    assert _template(plugins, "phi").stop_words == ("<|end|>",)
    assert _template(plugins, "phi4").special_tokens["eos_token"] == "<|im_end|>"
    assert _template(plugins, "phi4_mini").stop_words == ("<|end|>",)
    assert not _template(plugins, "phi").supports_tools
    assert not _template(plugins, "phi4").supports_tools
    assert _template(plugins, "phi4_mini").supports_tools
    # The deliberate differences from the tokenizers' own templates must not fail the start-up check.
    assert _template(plugins, "phi").tokenizer_template_may_differ
    assert _template(plugins, "phi4_mini").tokenizer_template_may_differ
    assert not _template(plugins, "phi4").tokenizer_template_may_differ


def test_phi3_lora_targets_exist_in_transformers() -> None:
    """Phi-3's fused projections are named as in transformers' Phi3ForCausalLM (and Phi's in PhiForCausalLM)."""
    from transformers import Phi3Config, Phi3ForCausalLM, PhiConfig, PhiForCausalLM

    small = dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    for model, family in (
        (Phi3ForCausalLM(Phi3Config(**small, pad_token_id=0)), ft_core_phi.PHI3_FAMILY),
        (PhiForCausalLM(PhiConfig(**small)), ft_core_phi.PHI_FAMILY),
    ):
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        assert family.lora_targets is not None and set(family.lora_targets) <= names
        assert len(model.get_submodule(family.decoder_layers)) == 1


def test_phi4_is_the_official_template_verbatim(plugins: Any) -> None:
    template = _template(plugins, "phi4")
    assert template.jinja == _official("phi4")
    check_official_template(template, _official("phi4"), name="phi4")


@pytest.mark.parametrize("name", ["phi", "phi4_mini"])
def test_phi_and_phi4_mini_are_the_official_templates_minus_the_final_eos(plugins: Any, name: str) -> None:
    """Deliberate difference: the official templates end a whole conversation with ``eos_token``, which would sit
    between a turn's ``<|end|>`` and the next turn once the conversation goes on (the rendering of the first turns
    would change: not prefix-stable, so the trained tokens could not be located). ft-core drops it; every turn still
    ends with ``<|end|>``, the stop word. Otherwise they render exactly as the official templates."""
    template = _template(plugins, name)
    official = _official(name)
    eos = template.special_tokens["eos_token"]
    if name == "phi":
        assert template.jinja == _without_final_eos(official)
    check_official_template(
        template, _without_final_eos(official), name=name, conversations=golden_conversations()
    )
    for conversation in golden_conversations():
        ours = render_template(template, conversation.messages)
        assert (
            render_template(official, conversation.messages, special_tokens=template.special_tokens)
            == ours + eos
        )
        prompt = conversation.messages[:-1]
        assert render_template(
            official, prompt, special_tokens=template.special_tokens, add_generation_prompt=True
        ) == render_template(template, prompt, add_generation_prompt=True)


def test_phi_renders_like_the_phi_3_5_variant(plugins: Any) -> None:
    """Phi-3.5-mini-instruct's template only adds ``and message['content']`` to the system branch (an empty system
    message is skipped): on every golden conversation it renders like ``phi``."""
    phi35 = _official("phi").replace(
        "{% if message['role'] == 'system' %}", "{% if message['role'] == 'system' and message['content'] %}"
    )
    assert phi35 != _official("phi")
    check_official_template(_template(plugins, "phi"), _without_final_eos(phi35), name="phi (Phi-3.5)")


def _arguments(call: dict[str, Any]) -> Any:
    """A call's arguments as an object (a JSON string in the conversation means the same object)."""
    arguments = call["function"]["arguments"]
    return json.loads(arguments) if isinstance(arguments, str) else arguments


def _official_form(conversation: Conversation) -> list[dict[str, Any]]:
    """The conversation as the official Phi-4-mini template takes tools and calls: a ``tools`` JSON string on the
    system message (an empty one is added when there is none) and the calls written into the assistant content in
    the model card's format."""
    tools = json.dumps([tool["function"] for tool in conversation.tools or []], ensure_ascii=False)
    messages: list[dict[str, Any]] = []
    for message in conversation.messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            calls = [{"name": c["function"]["name"], "arguments": _arguments(c)} for c in message.tool_calls]
            item["content"] += "<|tool_call|>" + json.dumps(calls, ensure_ascii=False) + "<|/tool_call|>"
        messages.append(item)
    if conversation.tools:
        if messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": ""})
        messages[0]["tools"] = tools
    return messages


def _tool_conversations() -> list[Conversation]:
    [tools] = [c for c in golden_conversations(tools=True) if c.tools]
    with_system = Conversation(
        [Message("system", "You are a helpful assistant with some tools."), *tools.messages],
        tools=tools.tools,
        source="phi4_mini:tools-with-system",
    )
    parallel = Conversation(
        [
            Message("user", "Weather in Paris and Köln?"),
            Message(
                "assistant",
                "Checking.",
                tool_calls=[
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Köln"}'},
                    },
                ],
            ),
            Message("tool", '{"temperature": 21}'),
            Message("tool", '{"temperature": 12}'),
            Message("assistant", "21 and 12 degrees."),
        ],
        tools=tools.tools,
        source="phi4_mini:parallel-calls",
    )
    return [tools, with_system, parallel]


@pytest.mark.parametrize("conversation", _tool_conversations(), ids=lambda c: c.source)
def test_phi4_mini_renders_tools_and_calls_as_the_official_template_does(
    plugins: Any, conversation: Conversation
) -> None:
    """Deliberate difference: the official template reads tools only from a system message's ``tools`` string and
    has no tool-call rendering. ft-core's renders the run's tools and tool calls to exactly the text the official
    template gives for the same conversation written the official way."""
    template = _template(plugins, "phi4_mini")
    official = _without_final_eos(_official("phi4_mini"))
    expected_messages = _official_form(conversation)
    assert render_template(template, conversation.messages, tools=conversation.tools) == render_template(
        official, expected_messages, special_tokens=template.special_tokens
    )
    last = max(i for i, m in enumerate(conversation.messages) if m.role == "assistant")
    assert render_template(
        template, conversation.messages[:last], tools=conversation.tools, add_generation_prompt=True
    ) == render_template(
        official,
        _official_form(Conversation(conversation.messages[:last], tools=conversation.tools)),
        special_tokens=template.special_tokens,
        add_generation_prompt=True,
    )


@pytest.mark.parametrize("conversation", _tool_conversations(), ids=lambda c: c.source)
def test_phi4_mini_trains_exactly_the_assistant_turns_and_parses_its_calls(
    plugins: Any, conversation: Conversation
) -> None:
    template = _template(plugins, "phi4_mini")
    assert template.parse_tool_calls is not None
    assistants = [m for m in conversation.messages if m.role == "assistant"]
    spans = [span for _, span in trained_texts(template, conversation)]
    assert len(spans) == len(assistants)
    for message, span in zip(assistants, spans, strict=True):
        assert span.endswith("<|end|>")
        assert "<|user|>" not in span and "<|tool|>" not in span and "<|assistant|>" not in span
        content, calls = template.parse_tool_calls(span.removesuffix("<|end|>"))
        assert content == message.content
        expected = [(c["function"]["name"], _arguments(c)) for c in message.tool_calls or []]
        assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == expected


def test_phi4_mini_keeps_a_system_message_tools_string(plugins: Any) -> None:
    """A dataset that already writes the official form (``tools`` on the system message) renders as officially."""
    template = _template(plugins, "phi4_mini")
    messages = [
        {"role": "system", "content": "S", "tools": '[{"name": "f"}]'},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]
    expected = '<|system|>S<|tool|>[{"name": "f"}]<|/tool|><|end|><|user|>Q<|end|><|assistant|>A<|end|>'
    assert render_template(template, messages) == expected
    assert render_template(_official("phi4_mini"), messages, special_tokens=template.special_tokens) == (
        expected + "<|endoftext|>"
    )


@pytest.mark.parametrize(
    ("model_type", "family", "template"), [("phi", "phi", None), ("phi3", "phi3", "phi")]
)
def test_family_finetunes_a_tiny_model(
    tmp_path: Path, model_type: str, family: str, template: str | None
) -> None:
    """3 LoRA steps on a tiny random-init Phi-2 (with a generic template, `chatml`, as for any base model) and
    Phi-3 model: detected as its family, and `targets: all` is exactly the family's projections."""
    manifest = check_family_finetunes(
        ft_core_phi, family, model_type=model_type, tmp_path=tmp_path, template=template
    )
    assert manifest["template"]["name"] == (template or "chatml")
    adapter = json.loads(next((tmp_path / f"run-{model_type}").rglob("adapter_config.json")).read_text())
    expected = {"phi": ft_core_phi.PHI_FAMILY, "phi3": ft_core_phi.PHI3_FAMILY}[family].lora_targets
    assert set(adapter["target_modules"]) == set(expected or ())


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_phi")
