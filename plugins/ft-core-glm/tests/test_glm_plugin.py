"""ft-core-glm: registration, exactness of ``glm4`` / ``chatglm3`` against the official Jinja, GLM-4 tool calls,
family detection, tiny fine-tunes (glm, glm4) and the ChatGLM3 remote-code switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_glm
from ft_core.api import Conversation, FtCoreError, Message
from ft_core.testing import run_config, save_tiny_model_dir
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

OFFICIAL = Path(__file__).parent / "official"
GLM4_OFFICIAL = (OFFICIAL / "glm4.jinja").read_text(encoding="utf-8")
CHATGLM3_OFFICIAL = (OFFICIAL / "chatglm3.jinja").read_text(encoding="utf-8")


def _renderings(conversation: Conversation) -> list[tuple[list[Message], bool]]:
    """The whole conversation, and the generation prompt before every assistant turn."""
    messages = conversation.messages
    prompts = [(messages[:i], True) for i, m in enumerate(messages) if m.role == "assistant"]
    return [(messages, False), *prompts]


def _as_glm(messages: list[Message], tools: list | None) -> list[dict]:
    """A conversation as GLM-4's own template reads it: tools on a leading system message, each call an assistant
    message with ``metadata`` (the function name) and the JSON arguments as content, results as ``observation``
    (as THUDM's GLM-4 openai_api_server builds its history)."""
    out: list[dict] = [{"role": "system", "content": "", "tools": tools}] if tools else []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "observation", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            if m.content:
                out.append({"role": "assistant", "content": m.content})
            for call in m.tool_calls:
                arguments = json.dumps(call["function"]["arguments"], ensure_ascii=False)
                out.append({"role": "assistant", "metadata": call["function"]["name"], "content": arguments})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


# ------------------------------------------------------------------------------------------------ registration
def test_registers_families_and_templates(make_plugins):
    plugins = make_plugins(ft_core_glm)
    glm4 = plugins.get("model_family", "glm4")
    assert glm4.model_types == ("glm", "glm4")
    assert glm4.default_template == "glm4" and glm4.templates == ("glm4",)
    assert glm4.decoder_layers == "model.layers" and not glm4.trust_remote_code
    assert "gate_up_proj" in glm4.lora_targets and "liger" in glm4.patches
    chatglm3 = plugins.get("model_family", "chatglm3")
    assert chatglm3.model_types == ("chatglm",) and chatglm3.trust_remote_code
    assert chatglm3.default_template == "chatglm3"
    assert chatglm3.lora_targets == ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
    assert chatglm3.decoder_layers == "transformer.encoder.layers"
    assert plugins.get("chat_template", "glm4").supports_tools
    assert not plugins.get("chat_template", "chatglm3").supports_tools
    assert plugins.get("chat_template", "glm4").stop_words == ("<|user|>", "<|observation|>")


def test_import_light():
    check_import_light("ft_core_glm")


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"model_type": "glm", "architectures": ["GlmForCausalLM"]}, "glm4"),
        ({"model_type": "glm4", "architectures": ["Glm4ForCausalLM"]}, "glm4"),
        ({"model_type": "chatglm", "architectures": ["ChatGLMModel"]}, "chatglm3"),
        ({"model_type": "chatglm", "architectures": ["ChatGLMForConditionalGeneration"]}, "chatglm3"),
    ],
)
def test_family_detection_from_config_json(make_plugins, config, family):
    plugins = make_plugins(ft_core_glm)
    found = [
        name
        for name in plugins.names("model_family")
        if plugins.get("model_family", name).covers(config["model_type"], config["architectures"])
    ]
    assert found == [family]


# ------------------------------------------------------------------------------------------------ glm4
def test_glm4_renders_like_the_official_template():
    """Text exactness on every golden conversation, whole and at every generation prompt."""
    template = ft_core_glm.GLM4
    for conversation in golden_conversations():
        for messages, prompt in _renderings(conversation):
            ours = render_template(template, messages, add_generation_prompt=prompt)
            official = render_template(GLM4_OFFICIAL, messages, add_generation_prompt=prompt)
            assert ours == official, (conversation.source, prompt)
            assert ours.startswith("[gMASK]<sop>") and ours.count("[gMASK]<sop>") == 1


def test_glm4_tool_conversations_render_like_the_official_template():
    """Deliberate difference: GLM-4's own template reads tools from a message's ``tools`` key, calls from
    ``metadata`` and results from role ``observation``; ft-core's reads the Hugging Face fields (``tools``,
    ``tool_calls``, role ``tool``) and renders exactly the text the official one renders for GLM's form."""
    conversations = [c for c in golden_conversations(tools=True) if c.tools]
    assert conversations
    for conversation in conversations:
        for messages, prompt in _renderings(conversation):
            ours = render_template(
                ft_core_glm.GLM4, messages, tools=conversation.tools, add_generation_prompt=prompt
            )
            official = render_template(
                GLM4_OFFICIAL, _as_glm(messages, conversation.tools), add_generation_prompt=prompt
            )
            assert ours == official, (conversation.source, prompt)
    with_system = Conversation(
        [Message("system", "Be brief."), *conversations[0].messages], tools=conversations[0].tools
    )
    ours = render_template(ft_core_glm.GLM4, with_system.messages, tools=with_system.tools)
    assert ours == render_template(GLM4_OFFICIAL, _as_glm(with_system.messages, with_system.tools))
    assert "## get_weather" in ours and "<|system|>\nBe brief." in ours


def test_glm4_trained_spans_are_the_assistant_turns():
    for conversation in golden_conversations(tools=True):
        answers = [m for m in conversation.messages if m.role == "assistant"]
        spans = [span for _, span in trained_texts(ft_core_glm.GLM4, conversation)]
        assert len(spans) == len(answers)
        # Each answer ends with what follows it: the next role token (a stop word) or, last, EOS.
        ends = [
            "<|observation|>" if m.tool_calls else "<|endoftext|>" if i == len(answers) - 1 else "<|user|>"
            for i, m in enumerate(answers)
        ]
        for span, message, end in zip(spans, answers, ends, strict=True):
            if message.tool_calls:
                assert span == 'get_weather\n{"city": "Paris"}' + end
            else:
                assert span == "\n" + message.content + end


def test_glm4_parses_the_tool_calls_it_renders():
    conversation = next(c for c in golden_conversations(tools=True) if c.tools)
    index = next(i for i, m in enumerate(conversation.messages) if m.tool_calls)
    span = trained_texts(ft_core_glm.GLM4, conversation)[0][1]
    generated = span.removesuffix(
        "<|observation|>"
    )  # generation stops at the stop word, which is not returned
    content, calls = ft_core_glm.GLM4.parse_tool_calls(generated)
    expected = conversation.messages[index].tool_calls
    assert content == "" and calls == expected
    two = 'get_weather\n{"city": "Paris"}<|assistant|>get_weather\n{"city": "Köln"}'
    assert [c["function"]["arguments"]["city"] for c in ft_core_glm.GLM4.parse_tool_calls(two)[1]] == [
        "Paris",
        "Köln",
    ]
    assert ft_core_glm.GLM4.parse_tool_calls("\nIt is sunny.") == ("It is sunny.", [])
    assert ft_core_glm.GLM4.parse_tool_calls("get_weather\n{not json") == ("get_weather\n{not json", [])


def test_glm4_official_check_of_the_kit():
    check_official_template(
        ft_core_glm.GLM4, GLM4_OFFICIAL, name="glm4", conversations=golden_conversations()
    )


# ------------------------------------------------------------------------------------------------ chatglm3
def test_chatglm3_renders_like_the_official_template():
    assert ft_core_glm.CHATGLM3.jinja == CHATGLM3_OFFICIAL  # verbatim
    for conversation in golden_conversations():
        for messages, prompt in _renderings(conversation):
            text = render_template(ft_core_glm.CHATGLM3, messages, add_generation_prompt=prompt)
            assert text == render_template(CHATGLM3_OFFICIAL, messages, add_generation_prompt=prompt)
            # [gMASK]sop prefixes the first message only; each message is "<|role|>\n " + content
            assert text.startswith("[gMASK]sop<|") and text.count("[gMASK]sop") == 1
    text = render_template(
        ft_core_glm.CHATGLM3,
        [Message("system", "S"), Message("user", "Q"), Message("assistant", "A"), Message("user", "R")],
        add_generation_prompt=True,
    )
    assert text == "[gMASK]sop<|system|>\n S<|user|>\n Q<|assistant|>\n A<|user|>\n R<|assistant|>"


def test_chatglm3_trained_spans_are_the_assistant_turns():
    for conversation in golden_conversations():
        answers = [m.content for m in conversation.messages if m.role == "assistant"]
        # The next turn's role token (a stop word) ends each answer; EOS follows the last one.
        ends = ["<|user|>"] * (len(answers) - 1) + ["</s>"]
        assert [span for _, span in trained_texts(ft_core_glm.CHATGLM3, conversation)] == [
            "\n " + a + end for a, end in zip(answers, ends, strict=True)
        ]


def test_chatglm3_official_check_of_the_kit():
    check_official_template(ft_core_glm.CHATGLM3, CHATGLM3_OFFICIAL, name="chatglm3")


def test_chatglm3_needs_trust_remote_code(tmp_path, make_config):
    folder = Path(save_tiny_model_dir(str(tmp_path / "chatglm3")))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="chatglm", architectures=["ChatGLMModel"])
    config.pop("auto_map", None)
    (folder / "config.json").write_text(json.dumps(config))
    path = make_config(model={"name_or_path": str(folder)}, template="chatglm3")
    with pytest.raises(FtCoreError, match=r"model\.trust_remote_code: true"):
        run_config(path, ft_core_glm)


# ------------------------------------------------------------------------------------------------ fine-tunes
@pytest.mark.parametrize("model_type", ["glm", "glm4"])
def test_tiny_finetune(tmp_path, model_type):
    manifest = check_family_finetunes(
        ft_core_glm, "glm4", model_type=model_type, template="glm4", tmp_path=tmp_path
    )
    assert manifest["model_family"]["model_type"] == model_type


def test_glm4_passes_the_start_up_check_against_the_official_tokenizer_template(tmp_path, make_config):
    """A GLM-4 tokenizer carries the official template; ``template: glm4`` must pass ``check: strict`` with it."""
    from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_model, tiny_tokenizer

    folder = str(tmp_path / "glm4-tokenizer")
    glm_tokens = ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")
    tokenizer = tiny_tokenizer(
        special_tokens=[*DEFAULT_SPECIAL_TOKENS, *glm_tokens],
        chat_template=GLM4_OFFICIAL,
        eos_token="<|endoftext|>",
    )
    tiny_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    path = make_config(model={"name_or_path": folder}, template={"name": "glm4", "check": "strict"})
    run_config(path, ft_core_glm)
