"""ft-core plugin: the ``deepseek`` model family (DeepSeek-V2 / V2.5 / V3 / R1: model types deepseek_v2,
deepseek_v3) and the chat templates ``deepseek``, ``deepseekcoder``, ``deepseek3`` and ``deepseekr1``.

DeepSeek LLM and DeepSeek Coder (v1) checkpoints are Llama architectures (model_type ``llama``): ft-core detects
them as the ``llama`` family; their templates are registered here. DeepSeek's special tokens use full-width bars
and the ``▁`` character (``<｜User｜>``, ``<｜end▁of▁sentence｜>``); the templates keep them exactly.

The templates are kept as package data in ``ft_core_deepseek/templates/``. Import-light: registering imports
neither torch nor transformers.
"""

from importlib.resources import files

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_deepseek.toolcalls import parse_deepseek_tool_calls

__version__ = "0.2.0"

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
#: The tokens of DeepSeek LLM, V2, V2.5, V3, R1 and the R1 distills' tokenizers.
SPECIAL_TOKENS = {"bos_token": BOS, "eos_token": EOS}
#: DeepSeek Coder instruct: a turn ends with ``<|EOT|>``, its EOS.
CODER_SPECIAL_TOKENS = {"bos_token": BOS, "eos_token": "<|EOT|>"}
#: The system prompt the deepseek-coder-*-instruct template inserts when a conversation has none.
CODER_SYSTEM = (
    "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and "
    "you only answer questions related to computer science. For politically sensitive questions, security and "
    "privacy issues, and other non-computer science questions, you will refuse to answer"
)


def template_text(name: str) -> str:
    """The Jinja of template ``name`` (``deepseek``, ``deepseekcoder``, ``deepseek3``, ``deepseekr1``)."""
    return (files("ft_core_deepseek") / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


DEEPSEEK_FAMILY = ModelFamily(
    model_types=("deepseek_v2", "deepseek_v3"),
    architectures=("DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"),
    default_template="deepseek3",
    templates=("deepseek", "deepseekcoder", "deepseek3", "deepseekr1"),
    decoder_layers="model.layers",
    # Multi-head latent attention (q_a/q_b, kv_a/kv_b projections) and MLP projections; the routed experts are
    # fused expert tensors (no nn.Linear) and the router is not a LoRA target.
    lora_targets=None,
    models=(
        "deepseek-ai/DeepSeek-V2-Lite-Chat",
        "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct",
        "deepseek-ai/DeepSeek-V2.5",
        "deepseek-ai/DeepSeek-V3",
        "deepseek-ai/DeepSeek-R1",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B (model_type qwen2)",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B (model_type llama)",
        "deepseek-ai/deepseek-llm-7b-chat (model_type llama)",
        "deepseek-ai/deepseek-coder-6.7b-instruct (model_type llama)",
    ),
    description=(
        "DeepSeek-V2 / V2.5 / V3 / R1 MoE models (DeepseekV2ForCausalLM, DeepseekV3ForCausalLM); DeepSeek LLM, "
        "DeepSeek Coder and the R1 distills are llama / qwen2 architectures and use this family's templates"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``deepseek``."""
    register("deepseek", DEEPSEEK_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``deepseek``, ``deepseekcoder``, ``deepseek3`` and ``deepseekr1``."""
    register(
        "deepseek",
        ChatTemplate(
            jinja=template_text("deepseek"),
            special_tokens=SPECIAL_TOKENS,
            source="deepseek-ai/deepseek-llm-7b-chat tokenizer_config.json",
            description=(
                "DeepSeek LLM chat (7B / 67B), DeepSeek-V2(-Lite)-Chat, DeepSeek-Coder-V2-Instruct: "
                "'User: ...\\n\\nAssistant: ...<｜end▁of▁sentence｜>'; no tool format"
            ),
        ),
    )
    register(
        "deepseekcoder",
        ChatTemplate(
            jinja=template_text("deepseekcoder"),
            special_tokens=CODER_SPECIAL_TOKENS,
            default_system=CODER_SYSTEM,
            source="deepseek-ai/deepseek-coder-6.7b-instruct tokenizer_config.json (same in 1.3b / 33b-instruct)",
            description=(
                "DeepSeek Coder instruct (1.3B / 6.7B / 33B): '### Instruction:' / '### Response:' turns ending "
                "with <|EOT|>, default coding system prompt; no tool format"
            ),
        ),
    )
    register(
        "deepseek3",
        ChatTemplate(
            jinja=template_text("deepseek3"),
            special_tokens=SPECIAL_TOKENS,
            parse_tool_calls=parse_deepseek_tool_calls,
            source="deepseek-ai/DeepSeek-V3 tokenizer_config.json (tool-call block as DeepSeek's later revision)",
            description=(
                "DeepSeek-V3 / V2.5 chat: <｜User｜> / <｜Assistant｜> turns ending with <｜end▁of▁sentence｜>, "
                "tool calls in <｜tool▁calls▁begin｜> blocks, results in <｜tool▁outputs▁begin｜> blocks"
            ),
        ),
    )
    register(
        "deepseekr1",
        ChatTemplate(
            jinja=template_text("deepseekr1"),
            special_tokens=SPECIAL_TOKENS,
            prefix_stable=False,
            source="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B tokenizer_config.json (same in every R1 distill)",
            description=(
                "DeepSeek-R1 distills (Qwen / Llama): generation prompt '<｜Assistant｜><think>\\n', earlier turns' "
                "reasoning dropped; the trained turn is '<think>\\nreasoning\\n</think>\\n\\nanswer'; no tool format"
            ),
        ),
    )
