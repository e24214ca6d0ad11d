"""ft-core plugin: the Qwen2-VL / Qwen2.5-VL model family (``qwen2_vl``) and its chat template (``qwen2_vl``).

Import-light: registering imports neither torch nor transformers.
"""

from ft_core.api import ChatTemplate, ModelFamily, Register, VisionSpec, hookimpl
from ft_core_qwen_vl.templates import QWEN2_VL

__all__ = ["QWEN2_VL", "QWEN2_VL_FAMILY"]

__version__ = "0.2.0"

#: Qwen2-VL's instruct tokenizer: no BOS, ``<|im_end|>`` ends turns (and is EOS), ``<|endoftext|>`` pads.
SPECIAL_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}

QWEN2_VL_FAMILY = ModelFamily(
    model_types=("qwen2_vl", "qwen2_5_vl"),
    architectures=("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"),
    default_template="qwen2_vl",
    templates=("qwen2_vl",),
    decoder_layers="model.language_model.layers",
    vision=VisionSpec(
        vision_modules=("model.visual",),
        projector_modules=("model.visual.merger",),
        auto_class="AutoModelForImageTextToText",
        language_layers="model.language_model.layers",
    ),
    models=(
        "Qwen/Qwen2-VL-2B-Instruct",
        "Qwen/Qwen2-VL-7B-Instruct",
        "Qwen/Qwen2-VL-72B-Instruct",
        "Qwen/Qwen2.5-VL-3B-Instruct",
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "Qwen/Qwen2.5-VL-72B-Instruct",
    ),
    description=(
        "Qwen2-VL and Qwen2.5-VL vision-language models (ViT with patch merger + Qwen2 language model; "
        "dynamic resolution: the image token count follows the image size)"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``qwen2_vl`` (model types qwen2_vl, qwen2_5_vl)."""
    register("qwen2_vl", QWEN2_VL_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``qwen2_vl``."""
    register(
        "qwen2_vl",
        ChatTemplate(
            jinja=QWEN2_VL,
            stop_words=("<|im_end|>",),
            special_tokens=SPECIAL_TOKENS,
            default_system="You are a helpful assistant.",
            image_token="<|vision_start|><|image_pad|><|vision_end|>",
            source="Qwen/Qwen2-VL-7B-Instruct chat_template.json (identical in Qwen/Qwen2.5-VL-*-Instruct)",
            description=(
                "Qwen2-VL / Qwen2.5-VL instruct: ChatML with the default system prompt 'You are a helpful "
                "assistant.'; images render as <|vision_start|><|image_pad|><|vision_end|>; no tool format"
            ),
        ),
    )
