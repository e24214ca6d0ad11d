"""ft-core plugin: the PaliGemma model family (``paligemma``) and its prompt template (``paligemma``).

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, VisionSpec, hookimpl
from ft_core_paligemma.templates import PALIGEMMA

__version__ = "0.2.0"
__all__ = ["PALIGEMMA", "PALIGEMMA_FAMILY"]

#: PaliGemma's Gemma tokenizer.
SPECIAL_TOKENS = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}

PALIGEMMA_FAMILY = ModelFamily(
    model_types=("paligemma",),
    architectures=("PaliGemmaForConditionalGeneration",),
    default_template="paligemma",
    templates=("paligemma",),
    decoder_layers="model.language_model.layers",
    vision=VisionSpec(
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        auto_class="AutoModelForImageTextToText",
        language_layers="model.language_model.layers",
    ),
    models=(
        "google/paligemma-3b-pt-224",
        "google/paligemma-3b-mix-224",
        "google/paligemma2-3b-pt-224",
        "google/paligemma2-10b-pt-448",
    ),
    description=(
        "PaliGemma and PaliGemma 2 (SigLIP tower, linear projector, Gemma / Gemma 2; prefix-LM: the image and "
        "prompt attend bidirectionally, from token_type_ids)"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``paligemma`` (model type paligemma)."""
    register("paligemma", PALIGEMMA_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``paligemma``."""
    register(
        "paligemma",
        ChatTemplate(
            jinja=PALIGEMMA,
            special_tokens=SPECIAL_TOKENS,
            image_token="<image>",
            source=(
                "no published chat template: the prompt format of transformers' PaliGemmaProcessor "
                "(models/paligemma/processing_paligemma.py) and google-research/big_vision"
            ),
            description=(
                "PaliGemma prompts: <image>...<bos>prompt\\n answer<eos>; images before <bos> (first user turn "
                "only); no system or tool role; no tool format"
            ),
        ),
    )
