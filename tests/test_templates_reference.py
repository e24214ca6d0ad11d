"""Reference renderings of every shipped template.

The expected strings were derived by hand from each model's official ``tokenizer_config.json`` template
(meta-llama/Llama-2-7b-chat-hf, meta-llama/Meta-Llama-3-8B-Instruct, Qwen/Qwen2.5-7B-Instruct,
HuggingFaceH4/zephyr-7b-beta, the standard ChatML template) and, for the generic ones, from the formats of
LLaMA-Factory's templates of the same name (``vicuna``: FastChat v1.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_llama
import ft_core_qwen
import ft_core_templates_generic
import ft_template_zephyr
from ft_core.api.conversation import Message
from ft_core.engine.templates.render import render
from ft_core.testing.tiny import tiny_tokenizer

CHAT = [
    Message("system", "You are a helpful assistant."),
    Message("user", "Hi!"),
    Message("assistant", "Hello! How can I help?"),
    Message("user", "What is 2+2?"),
    Message("assistant", "4."),
]

# (template, bos, eos, whole conversation, generation prompt after the first user turn)
REFERENCES: dict[str, tuple[str, str, str, str]] = {
    "llama3": (
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "llama2": (
        "<s>",
        "</s>",
        "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHi! [/INST] Hello! How can I help? </s>"
        "<s>[INST] What is 2+2? [/INST] 4. </s>",
        "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHi! [/INST]",
    ),
    "qwen": (
        "<s>",
        "<|im_end|>",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4.<|im_end|>\n",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    "chatml": (
        "<s>",
        "<|im_end|>",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4.<|im_end|>\n",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    "zephyr": (
        "<s>",
        "</s>",
        "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHi!</s>\n<|assistant|>\nHello! How can I help?</s>\n"
        "<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n4.</s>\n",
        "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHi!</s>\n<|assistant|>\n",
    ),
    "default": (
        "<s>",
        "</s>",
        "System: You are a helpful assistant.</s>\nHuman: Hi!</s>\nAssistant:Hello! How can I help?</s>\n"
        "Human: What is 2+2?</s>\nAssistant:4.</s>\n",
        "System: You are a helpful assistant.</s>\nHuman: Hi!</s>\nAssistant:",
    ),
    "alpaca": (
        "<s>",
        "</s>",
        "You are a helpful assistant.\n\n### Instruction:\nHi!\n\n### Response:\nHello! How can I help?</s>\n\n"
        "### Instruction:\nWhat is 2+2?\n\n### Response:\n4.</s>\n\n",
        "You are a helpful assistant.\n\n### Instruction:\nHi!\n\n### Response:\n",
    ),
    "vicuna": (
        "<s>",
        "</s>",
        "You are a helpful assistant. USER: Hi! ASSISTANT: Hello! How can I help?</s>USER: What is 2+2? ASSISTANT: 4.</s>",
        "You are a helpful assistant. USER: Hi! ASSISTANT:",
    ),
    "empty": (
        "<s>",
        "</s>",
        "You are a helpful assistant.Hi!Hello! How can I help?What is 2+2?4.",
        "You are a helpful assistant.Hi!",
    ),
}

# Without a system message: templates with a default system prompt insert it.
WITHOUT_SYSTEM: dict[str, str] = {
    "qwen": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n",
    "alpaca": "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\nHi!\n\n### Response:\nHello! How can I help?</s>\n\n",
    "vicuna": "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. USER: Hi! ASSISTANT: Hello! How can I help?</s>",
    "llama2": "<s>[INST] Hi! [/INST] Hello! How can I help? </s>",
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>",
}

QWEN_TOOLS = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", '
    '"properties": {"city": {"type": "string"}}}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    "<|im_end|>\n"
    '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\nsunny\n'
    "</tool_response><|im_end|>\n"
    "<|im_start|>assistant\nIt is 21 degrees and sunny.<|im_end|>\n"
)


@pytest.fixture(scope="module")
def templates() -> Any:
    from ft_core.bootstrap import load_plugins

    modules = (ft_core_llama, ft_core_qwen, ft_core_templates_generic, ft_template_zephyr)
    plugins = load_plugins(strict=True, entry_points=False, extra=[(m, m.__name__) for m in modules])
    return {name: plugins.get("chat_template", name) for name in plugins.names("chat_template")}


@pytest.fixture(scope="module")
def tokenizer_for() -> Callable[[str, str], Any]:
    cache: dict[tuple[str, str], Any] = {}

    def make(bos: str, eos: str) -> Any:
        if (bos, eos) not in cache:
            cache[bos, eos] = tiny_tokenizer(bos_token=bos, eos_token=eos, chat_template=None)
        return cache[bos, eos]

    return make


def test_every_template_has_a_reference(templates: dict[str, Any]) -> None:
    # Templates with an official source are also checked against that Jinja in their plugin's exactness tests;
    # generic templates (no official Jinja) are pinned here only, so each must have a reference.
    generic = {name for name, template in templates.items() if not template.source}
    assert generic <= set(REFERENCES), (
        f"generic templates without a reference: {sorted(generic - set(REFERENCES))}"
    )
    assert set(REFERENCES) <= set(templates)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_rendering(name: str, templates: dict[str, Any], tokenizer_for: Callable[..., Any]) -> None:
    bos, eos, whole, prompt = REFERENCES[name]
    tokenizer = tokenizer_for(bos, eos)
    assert render(tokenizer, templates[name].jinja, CHAT) == whole
    assert render(tokenizer, templates[name].jinja, CHAT[:2], add_generation_prompt=True) == prompt


@pytest.mark.parametrize("name", sorted(WITHOUT_SYSTEM))
def test_reference_rendering_without_system(
    name: str, templates: dict[str, Any], tokenizer_for: Callable[..., Any]
) -> None:
    bos, eos, _, _ = REFERENCES[name]
    assert render(tokenizer_for(bos, eos), templates[name].jinja, CHAT[1:3]) == WITHOUT_SYSTEM[name]


def test_qwen_tools_reference(templates: dict[str, Any], tokenizer_for: Callable[..., Any]) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    messages = [
        Message("user", "Weather in Paris?"),
        Message("assistant", "", tool_calls=[call]),
        Message("tool", '{"temp": 21}'),
        Message("tool", "sunny"),
        Message("assistant", "It is 21 degrees and sunny."),
    ]
    assert (
        render(tokenizer_for("<s>", "<|im_end|>"), templates["qwen"].jinja, messages, tools=[tool])
        == QWEN_TOOLS
    )


@pytest.mark.parametrize("name", ["default", "alpaca", "vicuna", "empty"])
def test_generic_templates_refuse_tool_calls(
    name: str, templates: dict[str, Any], tiny_tokenizer: Any
) -> None:
    from ft_core.engine.templates.render import TemplateRenderError

    call = {"type": "function", "function": {"name": "f", "arguments": {}}}
    messages = [Message("user", "Hi"), Message("assistant", "", tool_calls=[call])]
    with pytest.raises(TemplateRenderError, match=f"the {name} chat template has no syntax for tool calls"):
        render(tiny_tokenizer, templates[name].jinja, messages)
