"""ft-core plugin: the ``baichuan2`` model family (Baichuan / Baichuan 2, remote code) and the ``baichuan2``
chat template.

Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_baichuan.templates import BAICHUAN2

__version__ = "0.2.0"
__all__ = ["BAICHUAN2_FAMILY", "BAICHUAN2_TEMPLATE"]

BAICHUAN2_FAMILY = ModelFamily(
    model_types=("baichuan",),
    architectures=("BaichuanForCausalLM", "BaiChuanForCausalLM"),
    default_template="baichuan2",
    templates=("baichuan2",),
    decoder_layers="model.layers",
    lora_targets=("W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"),
    trust_remote_code=True,
    models=(
        "baichuan-inc/Baichuan2-7B-Chat (7B)",
        "baichuan-inc/Baichuan2-13B-Chat (13B)",
        "baichuan-inc/Baichuan2-7B-Base (7B base)",
        "baichuan-inc/Baichuan2-13B-Base (13B base)",
    ),
    description="Baichuan 2 (BaichuanForCausalLM, remote code)",
)

BAICHUAN2_TEMPLATE = ChatTemplate(
    jinja=BAICHUAN2,
    stop_words=("<reserved_106>",),
    stop_at_next_turn=True,  # no end marker after an answer: the next <reserved_106> (or EOS at the end) is trained
    special_tokens={"bos_token": "<s>", "eos_token": "</s>"},
    source="https://huggingface.co/baichuan-inc/Baichuan2-7B-Chat/blob/main/generation_utils.py (build_chat_input; "
    "no Jinja published)",
    description="Baichuan2-Chat: system, <reserved_106>user, <reserved_107>assistant",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``baichuan2``."""
    register("baichuan2", BAICHUAN2_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``baichuan2``."""
    register("baichuan2", BAICHUAN2_TEMPLATE)
