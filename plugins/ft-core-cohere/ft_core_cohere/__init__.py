"""ft-core plugin: the ``cohere`` model family (Command R / R+ / R7B, Aya) and the ``cohere`` chat template.

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_cohere.templates import COHERE

__version__ = "0.2.0"

COHERE_FAMILY = ModelFamily(
    model_types=("cohere", "cohere2"),
    architectures=("CohereForCausalLM", "Cohere2ForCausalLM"),
    default_template="cohere",
    templates=("cohere",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    models=(
        "CohereForAI/c4ai-command-r-v01",
        "CohereForAI/c4ai-command-r-plus",
        "CohereForAI/c4ai-command-r-08-2024",
        "CohereForAI/aya-expanse-8b",
        "CohereForAI/c4ai-command-r7b-12-2024",
    ),
    description=(
        "Cohere Command R, Command R+, Aya (CohereForCausalLM) and Command R7B (Cohere2ForCausalLM); template "
        "`cohere` is Command R's; R7B ships a different template (use `template: auto` for it)"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``cohere``."""
    register("cohere", COHERE_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``cohere``."""
    register(
        "cohere",
        ChatTemplate(
            jinja=COHERE,
            stop_words=("<|END_OF_TURN_TOKEN|>",),
            special_tokens={"bos_token": "<BOS_TOKEN>", "eos_token": "<|END_OF_TURN_TOKEN|>"},
            source="CohereForAI/c4ai-command-r-v01 tokenizer_config.json, chat_template `default`",
            description=(
                "Command R / R+: <|START_OF_TURN_TOKEN|><|USER_TOKEN|> (CHATBOT, SYSTEM) ... "
                "<|END_OF_TURN_TOKEN|>; the tokenizer's `default` template (its `tool_use` / `rag` templates are "
                "not registered); no tool format"
            ),
        ),
    )
