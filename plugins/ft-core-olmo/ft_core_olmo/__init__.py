"""ft-core plugin: the ``olmo`` model family (OLMo, OLMo 2) and the ``olmo`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_olmo.templates import OLMO

__version__ = "0.2.0"

OLMO_FAMILY = ModelFamily(
    model_types=("olmo", "olmo2"),
    architectures=("OlmoForCausalLM", "Olmo2ForCausalLM"),
    default_template="olmo",
    templates=("olmo",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    patches=("liger",),  # Liger patches OLMo 2 (olmo2) only
    models=(
        "allenai/OLMo-1B-hf",
        "allenai/OLMo-7B-0724-Instruct-hf",
        "allenai/OLMo-2-0425-1B-Instruct",
        "allenai/OLMo-2-1124-7B-Instruct",
        "allenai/OLMo-2-1124-13B-Instruct",
        "allenai/OLMo-2-0325-32B-Instruct",
    ),
    description=(
        "AI2 OLMo (OlmoForCausalLM, the -hf checkpoints) and OLMo 2 (Olmo2ForCausalLM); template `olmo` is "
        "OLMo 2 Instruct's"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``olmo``."""
    register("olmo", OLMO_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``olmo``."""
    register(
        "olmo",
        ChatTemplate(
            jinja=OLMO,
            special_tokens={"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
            source="allenai/OLMo-2-1124-7B-Instruct tokenizer_config.json",
            description=(
                "OLMo 2 Instruct (Tülu 3 format): <|system|>/<|user|>/<|assistant|> headers, assistant turns end "
                "with EOS (verbatim); no tool format"
            ),
        ),
    )
