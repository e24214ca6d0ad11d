"""ft-core plugin: the ``mistral`` model family (Mistral 7B, Mixtral, Mistral Nemo, Mistral Small) and the chat
templates ``mistral``, ``mistral_v3``, ``mistral_tekken`` (alias ``mistral_nemo``) and ``mistral_small``.

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_mistral.templates import MISTRAL, MISTRAL_SMALL, MISTRAL_TEKKEN, MISTRAL_V3
from ft_core_mistral.toolcalls import parse_mistral_tool_calls

__version__ = "0.2.0"

__all__ = ["MISTRAL_FAMILY", "parse_mistral_tool_calls"]

#: Every Mistral tokenizer (SentencePiece v1/v3 and tekken): BOS ``<s>``, EOS ``</s>`` ends each answer.
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

#: The date ft-core writes into Mistral Small's default system prompt unless ``template.kwargs.date_string`` says
#: otherwise (the model's release date; the official template uses the current date).
MISTRAL_SMALL_DATE = "2025-01-30"

MISTRAL_SMALL_SYSTEM = (
    "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup headquartered "
    "in Paris.\nYour knowledge base was last updated on 2023-10-01. The current date is {date}.\n\nWhen you're "
    "not sure about some information, you say that you don't have the information and don't make up anything.\n"
    "If the user's question is not clear, ambiguous, or does not provide enough context for you to accurately "
    "answer the question, you do not try to answer it right away and you rather ask the user to clarify their "
    'request (e.g. "What are some good restaurants around me?" => "Where are you?" or "When is the next flight '
    'to Tokyo" => "Where do you travel from?")'
)

MISTRAL_FAMILY = ModelFamily(
    model_types=("mistral", "mixtral"),
    architectures=("MistralForCausalLM", "MixtralForCausalLM"),
    default_template="mistral_v3",
    templates=("mistral", "mistral_v3", "mistral_tekken", "mistral_nemo", "mistral_small"),
    decoder_layers="model.layers",
    # Every nn.Linear but the head: Mistral's attention and MLP projections; Mixtral's attention projections
    # (transformers 5 fuses Mixtral's experts into 3-D parameters and its router is no nn.Linear).
    lora_targets=None,
    patches=("liger",),
    models=(
        "mistralai/Mistral-7B-v0.1",
        "mistralai/Mistral-7B-Instruct-v0.1",
        "mistralai/Mistral-7B-Instruct-v0.2",
        "mistralai/Mistral-7B-v0.3",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "mistralai/Mixtral-8x22B-Instruct-v0.1",
        "mistralai/Mistral-Nemo-Base-2407",
        "mistralai/Mistral-Nemo-Instruct-2407",
        "mistralai/Mistral-Small-24B-Base-2501",
        "mistralai/Mistral-Small-24B-Instruct-2501",
    ),
    description=(
        "Mistral 7B v0.1-v0.3, Mixtral 8x7B / 8x22B, Mistral Nemo 12B, Mistral Small 24B (MistralForCausalLM, "
        "MixtralForCausalLM); chat models use mistral (v0.1/v0.2, Mixtral 8x7B), mistral_v3 (v0.3, Mixtral "
        "8x22B), mistral_tekken (Nemo) or mistral_small (Small 2501)"
    ),
)

_HF = "https://huggingface.co/"

_V3_CHANGES = (
    "ft-core differs from the official Jinja in two marked places: the system prompt also goes into the user "
    "turn before the final answer (the official one drops it from conversations that end with an answer), and "
    "calls/results without ids get deterministic ids (the official one raises); not prefix-stable, so each "
    "answer is trained as its own sample, rendered as at inference"
)


def _tekken() -> ChatTemplate:
    return ChatTemplate(
        jinja=MISTRAL_TEKKEN,
        special_tokens=SPECIAL_TOKENS,
        prefix_stable=False,
        tokenizer_template_may_differ=True,
        parse_tool_calls=parse_mistral_tool_calls,
        source=f"{_HF}mistralai/Mistral-Nemo-Instruct-2407 tokenizer_config.json",
        description=(
            "Mistral Nemo (tekken tokenizer): [INST]user[/INST]answer</s>, system prompt in the last user turn, "
            "[AVAILABLE_TOOLS] before the last user turn, [TOOL_CALLS][...], [TOOL_RESULTS]{...}[/TOOL_RESULTS]; "
            + _V3_CHANGES
        ),
    )


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``mistral``."""
    register("mistral", MISTRAL_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``mistral``, ``mistral_v3``, ``mistral_tekken``, ``mistral_nemo`` and ``mistral_small``."""
    register(
        "mistral",
        ChatTemplate(
            jinja=MISTRAL,
            special_tokens=SPECIAL_TOKENS,
            source=(
                f"{_HF}mistralai/Mistral-7B-Instruct-v0.2 tokenizer_config.json (identical in "
                "Mistral-7B-Instruct-v0.1 and Mixtral-8x7B-Instruct-v0.1)"
            ),
            description=(
                "Mistral v1 tokenizer (Mistral 7B Instruct v0.1/v0.2, Mixtral 8x7B Instruct): <s> [INST] user "
                "[/INST] answer</s>, system prompt in the first user turn, roles must alternate; no tool format"
            ),
        ),
    )
    register(
        "mistral_v3",
        ChatTemplate(
            jinja=MISTRAL_V3,
            special_tokens=SPECIAL_TOKENS,
            prefix_stable=False,
            tokenizer_template_may_differ=True,
            parse_tool_calls=parse_mistral_tool_calls,
            source=(
                f"{_HF}mistralai/Mistral-7B-Instruct-v0.3 tokenizer_config.json (v3 tokenizer template, also "
                "Mixtral-8x22B-Instruct-v0.1, Mistral-Large-Instruct-2407)"
            ),
            description=(
                "Mistral v3 tokenizer (Mistral 7B Instruct v0.3, Mixtral 8x22B Instruct): [INST] user[/INST] "
                "answer</s>, system prompt in the last user turn, [AVAILABLE_TOOLS] [...] before the last user "
                "turn, [TOOL_CALLS] [...], [TOOL_RESULTS] {...}[/TOOL_RESULTS]; " + _V3_CHANGES
            ),
        ),
    )
    register("mistral_tekken", _tekken())
    register("mistral_nemo", _tekken())
    register(
        "mistral_small",
        ChatTemplate(
            jinja=MISTRAL_SMALL,
            special_tokens=SPECIAL_TOKENS,
            default_system=MISTRAL_SMALL_SYSTEM.format(date=MISTRAL_SMALL_DATE),
            template_kwargs={"date_string": MISTRAL_SMALL_DATE},
            source=f"{_HF}mistralai/Mistral-Small-24B-Instruct-2501 tokenizer_config.json",
            description=(
                "Mistral Small 3 (24B Instruct 2501, v7 tekken): [SYSTEM_PROMPT]...[/SYSTEM_PROMPT] (a default "
                "one dated by kwarg date_string when none is given), [INST]user[/INST]answer</s>; no tool format"
            ),
        ),
    )
