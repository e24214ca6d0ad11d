"""ft-core plugin: the ``yuan2`` model family (Yuan 2.0, remote code) and the ``yuan`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_yuan.templates import YUAN

__version__ = "0.2.0"
__all__ = ["YUAN2_FAMILY", "YUAN_TEMPLATE"]

YUAN2_FAMILY = ModelFamily(
    model_types=("yuan",),
    architectures=("YuanForCausalLM",),
    default_template="yuan",
    templates=("yuan",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    trust_remote_code=True,
    models=("IEITYuan/Yuan2-2B-hf (2B)", "IEITYuan/Yuan2-51B-hf (51B)", "IEITYuan/Yuan2-102B-hf (102B)"),
    description="Yuan 2.0 (YuanForCausalLM, remote code)",
)

YUAN_TEMPLATE = ChatTemplate(
    jinja=YUAN,
    stop_words=("<eod>",),
    special_tokens={"bos_token": "<s>", "eos_token": "<eod>"},
    source="no Jinja published; https://huggingface.co/IEITYuan/Yuan2-2B-hf (model card: question + '<sep>', answers "
    "end with '<eod>') and LLaMA-Factory's `yuan` template for multi-turn",
    description="Yuan 2.0: {user}<sep>{answer}<eod>\\n",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``yuan2``."""
    register("yuan2", YUAN2_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``yuan``."""
    register("yuan", YUAN_TEMPLATE)
