"""ft-core plugin: the ``qwen`` model family (Qwen1.5, Qwen2, Qwen2.5, Qwen3, QwQ and their MoE variants) and
the chat templates ``qwen`` (alias ``qwen2.5``), ``qwen2``, ``qwen1.5`` and ``qwen3``.

The templates are the models' official Jinja, kept as package data in ``ft_core_qwen/templates/`` (``qwen1.5``
differs on purpose, see its description). Import-light: registering imports neither torch nor transformers.
"""

from importlib.resources import files

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core.api.toolcalls import hermes

__version__ = "0.2.0"

#: Default system prompt of Qwen2.5-Instruct (and Qwen2.5-Coder / -Math instruct), inserted when a conversation
#: has none.
QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#: Default system prompt of Qwen2-Instruct.
QWEN2_SYSTEM = "You are a helpful assistant."
#: Default system prompt of Qwen1.5-Chat (no final period).
QWEN15_SYSTEM = "You are a helpful assistant"

#: Qwen chat tokenizers: ``<|im_end|>`` is EOS and ends every turn; the templates use no BOS.
SPECIAL_TOKENS = {"eos_token": "<|im_end|>"}


def template_text(name: str) -> str:
    """The Jinja of template ``name`` (``qwen``, ``qwen2``, ``qwen1.5``, ``qwen3``) from the package data."""
    return (files("ft_core_qwen") / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


QWEN_FAMILY = ModelFamily(
    model_types=("qwen2", "qwen2_moe"),
    architectures=("Qwen2ForCausalLM", "Qwen2MoeForCausalLM"),
    default_template="qwen",
    templates=("qwen", "qwen2.5", "qwen2", "qwen1.5"),
    decoder_layers="model.layers",
    lora_targets=None,  # every linear layer except lm_head (attention, MLP / expert projections, routers)
    pad_token="<|endoftext|>",
    patches=("liger",),
    models=(
        "Qwen/Qwen1.5-0.5B-Chat",
        "Qwen/Qwen1.5-7B-Chat",
        "Qwen/Qwen1.5-MoE-A2.7B-Chat",
        "Qwen/Qwen2-0.5B-Instruct",
        "Qwen/Qwen2-7B-Instruct",
        "Qwen/Qwen2-57B-A14B-Instruct",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen2.5-72B-Instruct",
        "Qwen/Qwen2.5-Coder-7B-Instruct",
        "Qwen/Qwen2.5-Math-7B-Instruct",
        "Qwen/QwQ-32B",
    ),
    description=(
        "Qwen1.5, Qwen2, Qwen2.5 (incl. Coder / Math) and QwQ, dense and MoE (model_type qwen2, qwen2_moe); chat "
        "models: `qwen1.5`, `qwen2`, `qwen` (Qwen2.5)"
    ),
)

#: Qwen3 is its own family entry so that its chat models default to the reasoning template ``qwen3``.
QWEN3_FAMILY = ModelFamily(
    model_types=("qwen3", "qwen3_moe"),
    architectures=("Qwen3ForCausalLM", "Qwen3MoeForCausalLM"),
    default_template="qwen3",
    templates=("qwen3",),
    decoder_layers="model.layers",
    lora_targets=None,
    pad_token="<|endoftext|>",
    patches=("liger",),
    models=("Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B", "Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-235B-A22B"),
    description="Qwen3 dense and MoE (model_type qwen3, qwen3_moe), hybrid thinking; chat models: `qwen3`",
)


def _qwen25() -> ChatTemplate:
    return ChatTemplate(
        jinja=template_text("qwen"),
        stop_words=("<|im_end|>",),
        special_tokens=SPECIAL_TOKENS,
        default_system=QWEN25_SYSTEM,
        parse_tool_calls=hermes,
        source="Qwen/Qwen2.5-7B-Instruct tokenizer_config.json (same in every Qwen2.5-*-Instruct)",
        description=(
            "Qwen2.5-Instruct, Qwen2.5-Coder-Instruct, Qwen2.5-Math-Instruct: ChatML, default system prompt "
            f'"{QWEN25_SYSTEM}", tools in the system turn, <tool_call> / <tool_response> (Hermes) blocks'
        ),
    )


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``qwen`` and ``qwen3``."""
    register("qwen", QWEN_FAMILY)
    register("qwen3", QWEN3_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``qwen`` / ``qwen2.5``, ``qwen2``, ``qwen1.5`` and ``qwen3``."""
    register("qwen", _qwen25())
    register("qwen2.5", _qwen25())
    register(
        "qwen2",
        ChatTemplate(
            jinja=template_text("qwen2"),
            stop_words=("<|im_end|>",),
            special_tokens=SPECIAL_TOKENS,
            default_system=QWEN2_SYSTEM,
            source="Qwen/Qwen2-7B-Instruct tokenizer_config.json (same in every Qwen2-*-Instruct)",
            description=f'Qwen2-Instruct: ChatML, default system prompt "{QWEN2_SYSTEM}"; no tool format',
        ),
    )
    register(
        "qwen1.5",
        ChatTemplate(
            jinja=template_text("qwen1.5"),
            stop_words=("<|im_end|>",),
            special_tokens=SPECIAL_TOKENS,
            default_system=QWEN15_SYSTEM,
            # The official template leaves the final assistant turn of a conversation without <|im_end|>;
            # ft-core closes it as every earlier turn is closed, so the model learns to stop. Renderings of
            # finished conversations therefore differ from the tokenizer's own template by that marker.
            tokenizer_template_may_differ=True,
            source="Qwen/Qwen1.5-7B-Chat tokenizer_config.json (same in every Qwen1.5-*-Chat)",
            description=(
                f'Qwen1.5-Chat: ChatML, default system prompt "{QWEN15_SYSTEM}"; the final assistant turn is '
                "closed with <|im_end|> (the official template omits it); no tool format"
            ),
        ),
    )
    register(
        "qwen3",
        ChatTemplate(
            jinja=template_text("qwen3"),
            stop_words=("<|im_end|>",),
            special_tokens=SPECIAL_TOKENS,
            prefix_stable=False,
            template_kwargs={"enable_thinking": True},
            parse_tool_calls=hermes,
            source="Qwen/Qwen3-8B tokenizer_config.json (same in Qwen3-0.6B ... Qwen3-235B-A22B)",
            description=(
                "Qwen3 (hybrid thinking): ChatML without default system prompt, reasoning in <think> blocks "
                "(earlier turns' reasoning dropped), `enable_thinking` (default true), Hermes tool calls"
            ),
        ),
    )
