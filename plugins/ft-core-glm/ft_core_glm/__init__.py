"""ft-core plugin: the ``glm4`` (GLM-4, transformers ``glm`` / ``glm4``) and ``chatglm3`` (ChatGLM3, remote code)
model families and their chat templates ``glm4`` and ``chatglm3``.

Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from importlib.resources import files

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_glm.toolcalls import parse_glm4_tool_calls

__version__ = "0.2.0"


def _jinja(name: str) -> str:
    return (files("ft_core_glm") / "jinja" / f"{name}.jinja").read_text(encoding="utf-8")


GLM4_FAMILY = ModelFamily(
    model_types=("glm", "glm4"),
    architectures=("GlmForCausalLM", "Glm4ForCausalLM"),
    default_template="glm4",
    templates=("glm4",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
    patches=("liger",),
    models=(
        "THUDM/glm-4-9b-chat-hf (9B, glm)",
        "THUDM/glm-4-9b-hf (9B base, glm)",
        "THUDM/GLM-4-9B-0414 (9B, glm4)",
        "THUDM/GLM-4-32B-0414 (32B, glm4)",
    ),
    description="GLM-4 (GlmForCausalLM, Glm4ForCausalLM)",
)

CHATGLM3_FAMILY = ModelFamily(
    model_types=("chatglm",),
    architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
    default_template="chatglm3",
    templates=("chatglm3",),
    decoder_layers="transformer.encoder.layers",
    lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    trust_remote_code=True,
    models=("THUDM/chatglm3-6b (6B)", "THUDM/chatglm3-6b-base (6B base)", "THUDM/chatglm3-6b-32k (6B)"),
    description="ChatGLM3 (ChatGLMForConditionalGeneration, remote code)",
)

GLM4 = ChatTemplate(
    jinja=_jinja("glm4"),
    stop_words=("<|user|>", "<|observation|>"),
    stop_at_next_turn=True,  # answers end with the next role token: trained after each answer, EOS after the last
    special_tokens={"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
    parse_tool_calls=parse_glm4_tool_calls,
    source="https://huggingface.co/THUDM/glm-4-9b-chat/blob/main/tokenizer_config.json",
    description="GLM-4-9B-Chat: [gMASK]<sop><|user|>\\n... <|assistant|>\\n...; tools in the system turn, calls as "
    "<|assistant|>name\\n{json}, results as <|observation|>",
)

CHATGLM3 = ChatTemplate(
    jinja=_jinja("chatglm3"),
    stop_words=("<|user|>", "<|observation|>"),
    stop_at_next_turn=True,
    special_tokens={"eos_token": "</s>"},
    source="https://huggingface.co/THUDM/chatglm3-6b/blob/103caa40027ebfd8450289ca2f278eac4ff26405/tokenizer_config.json",
    description="ChatGLM3-6B: [gMASK]sop<|role|>\\n content",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``glm4`` and ``chatglm3``."""
    register("glm4", GLM4_FAMILY)
    register("chatglm3", CHATGLM3_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``glm4`` and ``chatglm3``."""
    register("glm4", GLM4)
    register("chatglm3", CHATGLM3)
