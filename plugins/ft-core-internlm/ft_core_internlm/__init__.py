"""ft-core plugin: the ``internlm2`` model family (InternLM2, remote code) and the ``intern2`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_internlm.templates import INTERN2, INTERNLM2_META_INSTRUCTION

__version__ = "0.2.0"
__all__ = ["INTERN2_TEMPLATE", "INTERNLM2_FAMILY", "INTERNLM2_META_INSTRUCTION"]

INTERNLM2_FAMILY = ModelFamily(
    model_types=("internlm2",),
    architectures=("InternLM2ForCausalLM",),
    default_template="intern2",
    templates=("intern2",),
    decoder_layers="model.layers",
    lora_targets=("wqkv", "wo", "w1", "w2", "w3"),
    trust_remote_code=True,
    models=(
        "internlm/internlm2-chat-7b (7B)",
        "internlm/internlm2-chat-20b (20B)",
        "internlm/internlm2-chat-1_8b (1.8B)",
        "internlm/internlm2_5-7b-chat (7B)",
        "internlm/internlm2-7b (7B base)",
    ),
    description="InternLM2 / InternLM2.5 (InternLM2ForCausalLM, remote code)",
)

INTERN2_TEMPLATE = ChatTemplate(
    jinja=INTERN2,
    stop_words=("<|im_end|>",),
    special_tokens={"bos_token": "<s>", "eos_token": "</s>"},
    source="https://huggingface.co/internlm/internlm2-chat-7b/blob/main/tokenizer_config.json",
    description="InternLM2-Chat: <s> then ChatML turns <|im_start|>role\\n...<|im_end|>\\n",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``internlm2``."""
    register("internlm2", INTERNLM2_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``intern2``."""
    register("intern2", INTERN2_TEMPLATE)
