"""ft-core plugin: the Gemma model families (``gemma``, ``gemma3``) and chat templates (``gemma``, ``gemma3``).

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, VisionSpec, hookimpl
from ft_core_gemma.templates import GEMMA, GEMMA3

__version__ = "0.2.0"

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: Gemma's tokenizer (all versions): ``<bos>`` starts every rendering, ``<eos>`` is EOS, a turn ends with
#: ``<end_of_turn>``.
SPECIAL_TOKENS = {"bos_token": "<bos>", "eos_token": "<eos>"}

GEMMA_FAMILY = ModelFamily(
    model_types=("gemma", "gemma2", "gemma3_text"),
    architectures=("GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"),
    default_template="gemma",
    templates=("gemma", "gemma3"),
    decoder_layers="model.layers",
    lora_targets=_PROJECTIONS,
    patches=("liger",),
    models=(
        "google/gemma-2b",
        "google/gemma-7b-it",
        "google/codegemma-7b-it",
        "google/gemma-2-2b-it",
        "google/gemma-2-9b-it",
        "google/gemma-2-27b-it",
        "google/gemma-3-1b-it",
    ),
    description=(
        "Gemma, CodeGemma, Gemma 2 and text-only Gemma 3 (GemmaForCausalLM, Gemma2ForCausalLM, "
        "Gemma3ForCausalLM); chat models use `gemma` (Gemma 1/2, CodeGemma) or `gemma3` (Gemma 3 1B-it)"
    ),
)

GEMMA3_FAMILY = ModelFamily(
    model_types=("gemma3",),
    architectures=("Gemma3ForConditionalGeneration",),
    default_template="gemma3",
    templates=("gemma3",),
    decoder_layers="model.language_model.layers",
    lora_targets=None,  # every linear layer of the language model (the vision tower and projector are excluded)
    patches=("liger",),
    models=("google/gemma-3-4b-it", "google/gemma-3-12b-it", "google/gemma-3-27b-it"),
    vision=VisionSpec(
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        auto_class="AutoModelForImageTextToText",
        language_layers="model.language_model.layers",
    ),
    description="Gemma 3 vision-language models 4B-27B (Gemma3ForConditionalGeneration: SigLIP tower + Gemma 3)",
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``gemma`` (text models) and ``gemma3`` (the vision-language Gemma 3)."""
    register("gemma", GEMMA_FAMILY)
    register("gemma3", GEMMA3_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``gemma`` and ``gemma3``."""
    register(
        "gemma",
        ChatTemplate(
            jinja=GEMMA,
            stop_words=("<end_of_turn>",),
            special_tokens=SPECIAL_TOKENS,
            source="google/gemma-7b-it tokenizer_config.json (identical in google/gemma-2-*-it, google/codegemma-7b-it)",
            description=(
                "Gemma / Gemma 2 / CodeGemma instruct: <start_of_turn>user|model ... <end_of_turn>; no system "
                "role (refused, as the official template does); no tool format"
            ),
        ),
    )
    register(
        "gemma3",
        ChatTemplate(
            jinja=GEMMA3,
            stop_words=("<end_of_turn>",),
            special_tokens=SPECIAL_TOKENS,
            image_token="<start_of_image>",
            source="google/gemma-3-4b-it tokenizer_config.json (identical in google/gemma-3-{1b,12b,27b}-it)",
            description=(
                "Gemma 3 instruct (text and vision): like `gemma`, with the system prompt folded into the first "
                "user turn; images render as <start_of_image>; no tool format"
            ),
        ),
    )
