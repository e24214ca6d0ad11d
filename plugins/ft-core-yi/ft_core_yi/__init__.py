"""ft-core plugin: the ``yi`` model family and the ``yi`` chat template (01.AI Yi / Yi-1.5 chat models).

Yi and Yi-1.5 checkpoints are Llama architectures (``model_type: llama``, ``LlamaForCausalLM``) and are detected
as the ``llama`` family. The ``yi`` family covers the first Yi revisions, published with their own code
(``model_type: Yi``, ``YiForCausalLM``; load them with ``model.trust_remote_code: true``), and carries the
chat template for the docs and start-up suggestions. Import-light: registering imports neither torch nor
transformers.
"""

from importlib.resources import files

from ft_core.api import ChatTemplate, ModelFamily, Register, hookimpl

__version__ = "0.2.0"

#: Yi chat tokenizers: ``<|startoftext|>`` BOS, ``<|im_end|>`` EOS (ends every assistant turn); the template
#: uses neither variable.
SPECIAL_TOKENS = {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>"}


def template_text(name: str = "yi") -> str:
    """The Jinja of the ``yi`` template (package data)."""
    return (files("ft_core_yi") / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


YI_FAMILY = ModelFamily(
    model_types=("Yi",),
    architectures=("YiForCausalLM",),
    default_template="yi",
    templates=("yi",),
    decoder_layers="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    trust_remote_code=True,
    pad_token="<unk>",
    models=(
        "01-ai/Yi-6B-Chat (model_type llama)",
        "01-ai/Yi-34B-Chat (model_type llama)",
        "01-ai/Yi-1.5-6B-Chat (model_type llama)",
        "01-ai/Yi-1.5-9B-Chat (model_type llama)",
        "01-ai/Yi-1.5-34B-Chat (model_type llama)",
    ),
    description=(
        "01.AI Yi / Yi-1.5: current checkpoints are LlamaForCausalLM (detected as `llama`; use template `yi` "
        "for the chat models); the first Yi revisions (model_type Yi, YiForCausalLM) need trust_remote_code"
    ),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register ``yi``."""
    register("yi", YI_FAMILY)


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``yi``."""
    register(
        "yi",
        ChatTemplate(
            jinja=template_text(),
            stop_words=("<|im_end|>",),
            special_tokens=SPECIAL_TOKENS,
            source="01-ai/Yi-1.5-6B-Chat tokenizer_config.json (same in Yi-6B-Chat, Yi-34B-Chat, Yi-1.5-*-Chat)",
            description=(
                "Yi / Yi-1.5 chat: ChatML-style user / assistant turns ending with <|im_end|>; a system prompt is "
                "written as plain text before the first turn (no system turn); no default system prompt, no tools"
            ),
        ),
    )
