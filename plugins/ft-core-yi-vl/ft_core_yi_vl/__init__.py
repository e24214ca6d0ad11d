"""ft-core plugin: the ``yi_vl`` model family (Yi-VL, LLaVA-style remote code) and the ``yi_vl`` chat template.

Yi-VL's ``config.json`` says ``model_type: llava`` (transformers' own LLaVA type) with architecture
``LlavaLlamaForCausalLM`` (Yi's code); the family is detected by that architecture only, so it never claims
transformers' LLaVA models. Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_yi_vl.templates import YI_VL, YI_VL_SYSTEM

__version__ = "0.2.0"
__all__ = ["YI_VL_FAMILY", "YI_VL_SYSTEM", "YI_VL_TEMPLATE"]

YI_VL_FAMILY = ModelFamily(
    model_types=(),
    architectures=("LlavaLlamaForCausalLM",),
    default_template="yi_vl",
    templates=("yi_vl",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    trust_remote_code=True,
    models=("01-ai/Yi-VL-6B (6B)", "01-ai/Yi-VL-34B (34B)"),
    description="Yi-VL (LlavaLlamaForCausalLM, model_type llava; Yi's own code)",
)

YI_VL_TEMPLATE = ChatTemplate(
    jinja=YI_VL,
    stop_words=("###",),
    special_tokens={"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"},
    default_system=YI_VL_SYSTEM,
    source="https://github.com/01-ai/Yi/blob/main/VL/llava/conversation.py (Conversation.get_prompt, mm_default; "
    "no Jinja published)",
    description="Yi-VL: system\\n\\n### Human: ...\\n### Assistant: ...\\n### ",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``yi_vl``."""
    register("yi_vl", YI_VL_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``yi_vl``."""
    register("yi_vl", YI_VL_TEMPLATE)
