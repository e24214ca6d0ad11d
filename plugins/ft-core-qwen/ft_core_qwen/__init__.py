"""ft-core plugin: the ``qwen`` model family (Qwen2, Qwen2-MoE, Qwen3, Qwen3-MoE) and the ``qwen`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_qwen.templates import QWEN

__version__ = "0.2.0"

QWEN_FAMILY = ModelFamily(
    model_types=("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"),
    default_template="qwen",
    decoder_layers="model.layers",
    description="Qwen2 / Qwen2.5 / Qwen3 and their mixture-of-experts variants",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``qwen``."""
    register("qwen", QWEN_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``qwen``."""
    register(
        "qwen",
        ChatTemplate(
            jinja=QWEN,
            stop_words=("<|im_end|>",),
            description="Qwen2.5-Instruct: ChatML with a default system prompt and tool calls",
        ),
    )
