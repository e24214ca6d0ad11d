"""Registered data (not behaviour): chat templates, model families and plugin config sections.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template: a Jinja template in the Hugging Face ``chat_template`` dialect.

    ``jinja`` receives ``messages`` (``role`` / ``content`` / ``tool_calls`` / ``reasoning_content``), ``tools``,
    ``add_generation_prompt``, the tokenizer's special tokens (``bos_token``, ``eos_token``) and the run's chat
    template keyword arguments (``template.kwargs``, e.g. ``enable_thinking``), exactly as
    ``tokenizer.apply_chat_template`` passes them, so a template can be the model's own verbatim.

    - ``stop_words``: extra strings that end a generated assistant turn (the tokenizer's EOS always does); each
      must be one token of the run's tokenizer (checked at start-up).
    - ``tokenizer_template_may_differ``: turns the start-up equality check against the tokenizer's own template
      off for templates that are deliberately generic (``default``, ``alpaca``, ...).
    - ``special_tokens``: the model's own special tokens by Jinja variable (``{"bos_token": "<s>", ...}``); used
      to render without a tokenizer (``ft-core template show``, the generated docs).
    - ``default_system``: the system prompt the template inserts when a conversation has none (documentation).
    - ``prefix_stable``: ``False`` for templates that rewrite earlier turns once more follow (Qwen3 and R1-style
      reasoning templates drop earlier turns' reasoning). Each assistant turn is then encoded as its own sample,
      rendered exactly as the model sees it at inference.
    - ``template_kwargs``: defaults of extra Jinja variables (``{"enable_thinking": True}``); ``template.kwargs``
      in the config overrides them.
    - ``parse_tool_calls``: splits generated text into ``(content, tool_calls)`` in this template's tool-call
      format (``ft_core.api.toolcalls`` has the common ones); ``None`` when the template has no tool format.
    - ``image_token``: for a vision-language template, the text the template writes for one image content part
      (e.g. ``<|vision_start|><|image_pad|><|vision_end|>``); ``None`` for text-only templates.
    - ``source``: where the official template comes from (the model's published ``tokenizer_config.json`` /
      ``chat_template.jinja``), for the docs.
    - ``stop_at_next_turn``: the template writes no end-of-turn marker after an answer (ChatGLM3, GLM-4,
      Baichuan 2): the model ends its turn by generating the next turn's marker, a stop word. ft-core then trains
      the stop-word token that follows each answer, and EOS after the last (LLaMA-Factory's ``efficient_eos``).
    """

    jinja: str
    stop_words: tuple[str, ...] = ()
    description: str = ""
    tokenizer_template_may_differ: bool = False
    special_tokens: Mapping[str, str] = field(default_factory=dict)
    default_system: str | None = None
    prefix_stable: bool = True
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    parse_tool_calls: Callable[[str], tuple[str, list[dict[str, Any]]]] | None = None
    image_token: str | None = None
    source: str = ""
    stop_at_next_turn: bool = False

    @property
    def supports_tools(self) -> bool:
        """Whether the template has a tool-call format (renders tools and calls, and can parse generated calls)."""
        return self.parse_tool_calls is not None


@dataclass(frozen=True)
class VisionSpec:
    """How a vision-language family is built: what to freeze, how to load it.

    ``vision_modules``: dotted module prefixes of the vision tower (frozen unless ``model.freeze_vision_tower`` is
    false); ``projector_modules``: those of the multi-modal projector (frozen unless
    ``model.freeze_multi_modal_projector`` is false). ``auto_class`` is the transformers auto class that loads the
    model. ``language_layers`` is the decoder-layer path of the language model (freeze tuning, LoRA ``all``).
    """

    vision_modules: tuple[str, ...]
    projector_modules: tuple[str, ...]
    auto_class: str = "AutoModelForImageTextToText"
    language_layers: str = "model.language_model.layers"


@dataclass(frozen=True)
class ModelFamily:
    """What ft-core needs to know about one architecture family.

    - ``model_types``: the ``config.model_type`` values this family covers.
    - ``architectures``: ``config.architectures`` entries that also identify it (remote-code models often keep a
      generic ``model_type``).
    - ``default_template``: the template of the family's chat models, suggested when ``template: auto`` finds no
      template in the tokenizer (base models accept any generic template).
    - ``templates``: every registered template of the family's variants (docs, start-up suggestions).
    - ``decoder_layers``: dotted attribute path of the decoder-layer ``ModuleList`` (freeze tuning uses it).
    - ``lora_targets``: module names that ``targets: all`` expands to; ``None`` means every ``nn.Linear``
      except the output head (and, for vision-language models, outside the vision tower and projector).
    - ``trust_remote_code``: the architecture is not in transformers; the model's own code must be allowed with
      ``model.trust_remote_code: true``.
    - ``pad_token``: the token to pad with when the tokenizer has none (default: EOS).
    - ``patches``: names of the model patches known to support this family (e.g. ``liger``).
    - ``models``: example Hugging Face ids and sizes for the supported-models table.
    - ``vision``: set for vision-language families.
    """

    model_types: tuple[str, ...]
    default_template: str | None = None
    decoder_layers: str = "model.layers"
    lora_targets: tuple[str, ...] | None = None
    description: str = ""
    architectures: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    trust_remote_code: bool = False
    pad_token: str | None = None
    patches: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    vision: VisionSpec | None = None

    def covers(self, model_type: str, architectures: Sequence[str] = ()) -> bool:
        """Whether a model with this ``model_type`` / ``architectures`` belongs to the family."""
        return model_type in self.model_types or any(a in self.architectures for a in architectures)


@dataclass(frozen=True)
class ConfigSection:
    """A top-level config section a plugin adds (e.g. ``neftune:``), validated against ``schema`` (a dataclass).

    The validated options are ``run.config.section(name)``; when a config omits the section, the schema's
    defaults apply, so every field needs a default.
    """

    schema: type
    description: str = ""
    #: A distributed strategy (FSDP, DeepSpeed): ``distributed.strategy: <section name>`` selects it and
    #: activates its plugin; its section may only be set with that strategy.
    strategy: bool = False
