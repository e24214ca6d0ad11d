"""ft-core plugin: the ``falcon`` model family (Falcon 7B / 40B / 180B) and the ``falcon`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_falcon.templates import FALCON

__version__ = "0.2.0"
__all__ = ["FALCON_FAMILY", "FALCON_TEMPLATE"]

FALCON_FAMILY = ModelFamily(
    model_types=("falcon",),
    architectures=("FalconForCausalLM",),
    default_template="falcon",
    templates=("falcon",),
    decoder_layers="transformer.h",
    lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    models=(
        "tiiuae/falcon-7b-instruct (7B)",
        "tiiuae/falcon-40b-instruct (40B)",
        "tiiuae/falcon-180B-chat (180B)",
        "tiiuae/falcon-7b (7B base)",
    ),
    description="Falcon (FalconForCausalLM)",
)

FALCON_TEMPLATE = ChatTemplate(
    jinja=FALCON,
    special_tokens={"eos_token": "<|endoftext|>"},
    source="no Jinja published for falcon-7b-instruct; references: LLaMA-Factory `falcon` template "
    "(https://github.com/hiyouga/LLaMA-Factory/blob/main/src/llamafactory/data/template.py) and the prompt format "
    "on https://huggingface.co/tiiuae/falcon-180B-chat",
    description="Falcon instruct/chat: System: ...\\nUser: ...\\nFalcon:{answer}<eos>\\n",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``falcon``."""
    register("falcon", FALCON_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``falcon``."""
    register("falcon", FALCON_TEMPLATE)
