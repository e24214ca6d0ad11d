"""ft-core plugin: the LLaVA-1.5 model family (``llava``) and its chat template (``llava``).

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, VisionSpec, hookimpl
from ft_core_llava.templates import LLAVA

__version__ = "0.2.0"
__all__ = ["LLAVA", "LLAVA_FAMILY"]

#: The Llama / Vicuna tokenizer of LLaVA-1.5.
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}

LLAVA_FAMILY = ModelFamily(
    model_types=("llava",),
    architectures=("LlavaForConditionalGeneration",),
    default_template="llava",
    templates=("llava",),
    decoder_layers="model.language_model.layers",
    vision=VisionSpec(
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        auto_class="AutoModelForImageTextToText",
        language_layers="model.language_model.layers",
    ),
    models=("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf", "llava-hf/bakLlava-v1-hf"),
    description=(
        "LLaVA-1.5 vision-language models (CLIP ViT-L/336 tower, MLP projector, Vicuna / Llama language model; "
        "576 image tokens per image)"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``llava`` (model type llava)."""
    register("llava", LLAVA_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``llava``."""
    register(
        "llava",
        ChatTemplate(
            jinja=LLAVA,
            special_tokens=SPECIAL_TOKENS,
            image_token="<image>\n",
            source="llava-hf/llava-1.5-7b-hf chat_template.json",
            description=(
                "LLaVA-1.5 (llava-hf): USER: <image>\\n... ASSISTANT: ...; the official template adds no BOS and no "
                "EOS after answers (use `vicuna` to train an EOS, as LLaMA-Factory does); no tool format"
            ),
        ),
    )
