"""ft-core plugin: the Phi model families (``phi``, ``phi3``) and chat templates (``phi``, ``phi4``, ``phi4_mini``).

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core.api.toolcalls import tagged_json
from ft_core_phi.templates import PHI, PHI4, PHI4_MINI

__version__ = "0.2.0"

PHI_FAMILY = ModelFamily(
    model_types=("phi",),
    architectures=("PhiForCausalLM",),
    default_template=None,  # base models without a chat template: use a generic one (`default`, `alpaca`, ...)
    templates=(),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
    models=("microsoft/phi-1", "microsoft/phi-1_5", "microsoft/phi-2"),
    description=(
        "Phi-1, Phi-1.5 and Phi-2 base models (PhiForCausalLM); no chat template: train them with a generic "
        "template such as `default` or `alpaca`"
    ),
)

PHI3_FAMILY = ModelFamily(
    model_types=("phi3",),
    architectures=("Phi3ForCausalLM",),
    default_template="phi",
    templates=("phi", "phi4", "phi4_mini"),
    decoder_layers="model.layers",
    # Phi-3 fuses the attention input projections (qkv_proj) and the MLP's gate and up projections (gate_up_proj).
    lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    patches=("liger",),
    models=(
        "microsoft/Phi-3-mini-4k-instruct",
        "microsoft/Phi-3-mini-128k-instruct",
        "microsoft/Phi-3-medium-4k-instruct",
        "microsoft/Phi-3.5-mini-instruct",
        "microsoft/phi-4",
        "microsoft/Phi-4-mini-instruct",
    ),
    description=(
        "Phi-3, Phi-3.5, Phi-4 and Phi-4-mini (Phi3ForCausalLM); templates `phi` (Phi-3/3.5), `phi4` (Phi-4), "
        "`phi4_mini` (Phi-4-mini, with tools)"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``phi`` and ``phi3``."""
    register("phi", PHI_FAMILY)
    register("phi3", PHI3_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``phi``, ``phi4`` and ``phi4_mini``."""
    register(
        "phi",
        ChatTemplate(
            jinja=PHI,
            stop_words=("<|end|>",),
            # Deliberately not the tokenizer's own text (no final eos_token): skip the start-up equality check, which
            # compares whole conversations and would refuse the intended difference. The stop word check remains.
            tokenizer_template_may_differ=True,
            special_tokens={"bos_token": "<s>", "eos_token": "<|endoftext|>"},
            source="microsoft/Phi-3-mini-4k-instruct tokenizer_config.json",
            description=(
                "Phi-3 / Phi-3.5 instruct: <|system|>, <|user|>, <|assistant|> turns ending <|end|>; the official "
                "template minus its final eos_token (prefix stability); no tool format"
            ),
        ),
    )
    register(
        "phi4",
        ChatTemplate(
            jinja=PHI4,
            stop_words=("<|im_end|>",),
            special_tokens={"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
            source="microsoft/phi-4 tokenizer_config.json",
            description="Phi-4: <|im_start|>role<|im_sep|>...<|im_end|> (verbatim); no tool format",
        ),
    )
    register(
        "phi4_mini",
        ChatTemplate(
            jinja=PHI4_MINI,
            stop_words=("<|end|>",),
            tokenizer_template_may_differ=True,  # as `phi`, plus the tool rendering the official template lacks
            special_tokens={"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
            parse_tool_calls=tagged_json("<|tool_call|>", "<|/tool_call|>"),
            source="microsoft/Phi-4-mini-instruct tokenizer_config.json",
            description=(
                "Phi-4-mini-instruct: <|role|>...<|end|>, tools as <|tool|>[...]<|/tool|> in the system turn, calls "
                "as <|tool_call|>[...]<|/tool_call|>; the official template minus its final eos_token, extended "
                "to render the run's tools and tool calls"
            ),
        ),
    )
