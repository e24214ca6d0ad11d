"""ft-core plugin: the ``llama`` model family and the ``llama2`` / ``llama3`` chat templates.

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_llama.templates import LLAMA2, LLAMA3

__version__ = "0.2.0"

LLAMA_FAMILY = ModelFamily(
    model_types=("llama",),
    default_template="llama3",
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    description="LLaMA / Llama-2 / Llama-3 (LlamaForCausalLM)",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``llama``."""
    register("llama", LLAMA_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``llama2`` and ``llama3``."""
    register(
        "llama2", ChatTemplate(jinja=LLAMA2, description="Llama-2-chat: [INST] ... [/INST] with <<SYS>>")
    )
    register(
        "llama3",
        ChatTemplate(
            jinja=LLAMA3,
            stop_words=("<|eot_id|>",),
            description="Llama-3-Instruct: <|start_header_id|>role<|end_header_id|> ... <|eot_id|>",
        ),
    )
