"""Registered data (not behaviour): chat templates, model families and plugin config sections.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template: a Jinja template in the Hugging Face ``chat_template`` dialect.

    ``jinja`` receives ``messages`` (``role`` / ``content`` / ``tool_calls``), ``tools``,
    ``add_generation_prompt`` and the tokenizer's special tokens (``bos_token``, ``eos_token``), exactly as
    ``tokenizer.apply_chat_template`` passes them, so a template can be the model's own verbatim.
    ``stop_words`` are extra strings that end a generated assistant turn (the tokenizer's EOS always does); each
    must be one token of the run's tokenizer (checked at start-up).
    ``tokenizer_template_may_differ`` turns the start-up equality check against the tokenizer's own template
    off for templates that are deliberately generic (``default``, ``alpaca``, ...).
    """

    jinja: str
    stop_words: tuple[str, ...] = ()
    description: str = ""
    tokenizer_template_may_differ: bool = False


@dataclass(frozen=True)
class ModelFamily:
    """What ft-core needs to know about one architecture family.

    ``model_types``: the ``config.model_type`` values this family covers.
    ``default_template``: the template suggested when ``template: auto`` finds no template in the tokenizer.
    ``decoder_layers``: dotted attribute path of the decoder-layer ``ModuleList`` (freeze tuning uses it).
    ``lora_targets``: module names that ``targets: all`` expands to; ``None`` means every ``nn.Linear``
    except the output head.
    """

    model_types: tuple[str, ...]
    default_template: str | None = None
    decoder_layers: str = "model.layers"
    lora_targets: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class ConfigSection:
    """A top-level config section a plugin adds (e.g. ``neftune:``), validated against ``schema`` (a dataclass).

    The validated options are ``run.config.section(name)``; when a config omits the section, the schema's
    defaults apply, so every field needs a default.
    """

    schema: type
    description: str = ""
