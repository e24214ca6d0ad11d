"""ft-core plugin: the ``llama`` model family and the Llama chat templates ``llama2``, ``llama3``,
``llama3.1`` (also Llama 3.3) and ``llama3.2``.

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl
from ft_core_llama.templates import LLAMA2, LLAMA3, LLAMA3_1, LLAMA3_2
from ft_core_llama.toolcalls import parse_llama3_tool_calls

__version__ = "0.2.0"

__all__ = ["LLAMA_FAMILY", "parse_llama3_tool_calls"]

#: Llama 2's SentencePiece tokenizer.
LLAMA2_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
#: Llama 3.x Instruct tokenizers (EOS is ``<|eot_id|>`` in the Instruct models' tokenizer_config.json).
LLAMA3_TOKENS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}

#: The ``Today Date`` ft-core renders into Llama 3.1+ system headers unless ``template.kwargs.date_string`` says
#: otherwise: the official templates' own fallback date, so trainings are reproducible.
DEFAULT_DATE = "26 Jul 2024"

LLAMA_FAMILY = ModelFamily(
    model_types=("llama",),
    architectures=("LlamaForCausalLM",),
    default_template="llama3",
    templates=("llama2", "llama3", "llama3.1", "llama3.2"),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    patches=("liger",),
    models=(
        "meta-llama/Llama-2-7b-hf",
        "meta-llama/Llama-2-7b-chat-hf",
        "meta-llama/Llama-2-13b-chat-hf",
        "meta-llama/Llama-2-70b-chat-hf",
        "meta-llama/Meta-Llama-3-8B",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "meta-llama/Meta-Llama-3-70B-Instruct",
        "meta-llama/Llama-3.1-8B",
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-405B-Instruct",
        "meta-llama/Llama-3.2-1B-Instruct",
        "meta-llama/Llama-3.2-3B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
    ),
    description=(
        "LLaMA, Llama 2, Llama 3, 3.1, 3.2 (1B/3B text), 3.3 (LlamaForCausalLM); chat models use llama2, llama3, "
        "llama3.1 (3.1 and 3.3) or llama3.2"
    ),
)

_HF = "https://huggingface.co/"


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``llama``."""
    register("llama", LLAMA_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``llama2``, ``llama3``, ``llama3.1`` and ``llama3.2``."""
    register(
        "llama2",
        ChatTemplate(
            jinja=LLAMA2,
            special_tokens=LLAMA2_TOKENS,
            source=f"{_HF}meta-llama/Llama-2-7b-chat-hf tokenizer_config.json (all Llama-2-*-chat-hf)",
            description=(
                "Llama 2 chat: <s>[INST] <<SYS>>...<</SYS>> user [/INST] answer </s>; roles must alternate; "
                "no tool format"
            ),
        ),
    )
    register(
        "llama3",
        ChatTemplate(
            jinja=LLAMA3,
            stop_words=("<|eot_id|>",),
            special_tokens=LLAMA3_TOKENS,
            source=f"{_HF}meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json (also Meta-Llama-3-70B-Instruct)",
            description=(
                "Llama 3 Instruct: <|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>; no tool format"
            ),
        ),
    )
    register(
        "llama3.1",
        ChatTemplate(
            jinja=LLAMA3_1,
            stop_words=("<|eot_id|>", "<|eom_id|>"),
            special_tokens=LLAMA3_TOKENS,
            template_kwargs={"date_string": DEFAULT_DATE},
            parse_tool_calls=parse_llama3_tool_calls,
            source=(
                f"{_HF}meta-llama/Llama-3.1-8B-Instruct tokenizer_config.json (identical in Llama-3.1-70B/405B-"
                "Instruct and Llama-3.3-70B-Instruct)"
            ),
            description=(
                "Llama 3.1 and 3.3 Instruct: system header with Cutting Knowledge Date / Today Date (kwarg "
                "date_string), tools in the first user turn (kwarg tools_in_user_message), JSON calls "
                '{"name", "parameters"}, results as ipython turns, builtin_tools with <|python_tag|>/<|eom_id|>'
            ),
        ),
    )
    register(
        "llama3.2",
        ChatTemplate(
            jinja=LLAMA3_2,
            stop_words=("<|eot_id|>", "<|eom_id|>"),
            special_tokens=LLAMA3_TOKENS,
            template_kwargs={"date_string": DEFAULT_DATE},
            parse_tool_calls=parse_llama3_tool_calls,
            source=f"{_HF}meta-llama/Llama-3.2-3B-Instruct tokenizer_config.json (also Llama-3.2-1B-Instruct)",
            description=(
                "Llama 3.2 1B/3B Instruct: as llama3.1 without built-in tools; Today Date from kwarg date_string "
                "(ft-core default 26 Jul 2024; the official template uses the current date when none is given)"
            ),
        ),
    )
