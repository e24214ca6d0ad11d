"""ft-core plugin: the ``xverse`` model family (XVERSE, remote code) and the ``xverse`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from __future__ import annotations

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_xverse.templates import XVERSE

__version__ = "0.2.0"
__all__ = ["XVERSE_FAMILY", "XVERSE_TEMPLATE"]

XVERSE_FAMILY = ModelFamily(
    model_types=("xverse",),
    architectures=("XverseForCausalLM",),
    default_template="xverse",
    templates=("xverse",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    trust_remote_code=True,
    models=(
        "xverse/XVERSE-13B-Chat (13B)",
        "xverse/XVERSE-7B-Chat (7B)",
        "xverse/XVERSE-65B-Chat (65B)",
        "xverse/XVERSE-13B (13B base)",
    ),
    description="XVERSE (XverseForCausalLM, remote code)",
)

XVERSE_TEMPLATE = ChatTemplate(
    jinja=XVERSE,
    special_tokens={"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"},
    source="https://huggingface.co/xverse/XVERSE-13B-Chat/blob/main/modeling_xverse.py (_build_chat_input; no "
    "Jinja published)",
    description="XVERSE-Chat: Human: ...\\n\\nAssistant: ...<eos>",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``xverse``."""
    register("xverse", XVERSE_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``xverse``."""
    register("xverse", XVERSE_TEMPLATE)
