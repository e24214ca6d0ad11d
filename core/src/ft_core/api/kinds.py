"""The one declaration of every component kind: its registry key, registration hook, base type, config section.

The hook specs (:mod:`ft_core.api.hookspecs`), ``ft-core plugins``, the config validator's component sections and
the hook reference all derive from, or are tested against, :data:`KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ft_core.api.components import (
    AdapterMethod,
    CliCommand,
    DatasetFormat,
    InferenceEngine,
    ModelPatch,
    OptimizerFactory,
    Quantizer,
    TrainingLogger,
    TrainingStage,
)
from ft_core.api.descriptors import ChatTemplate, ConfigSection, ModelFamily


@dataclass(frozen=True)
class Kind:
    """One component kind.

    ``section``/``selector``: the config section that selects a component of this kind and the key holding its
    name (``adapter.method``); ``many``: the section is a list (``loggers``); ``default``: the name used when a
    config omits the section.
    """

    key: str
    hook: str
    base: type
    title: str
    singular: str
    section: str | None = None
    selector: str = "name"
    many: bool = False
    default: str | None = None


KINDS: tuple[Kind, ...] = (
    Kind("model_family", "ft_register_model_families", ModelFamily, "model families", "model family"),
    Kind("chat_template", "ft_register_chat_templates", ChatTemplate, "chat templates", "chat template"),
    Kind(
        "quantizer", "ft_register_quantizers", Quantizer, "quantizers", "quantizer", "quantization", "method"
    ),
    Kind(
        "adapter",
        "ft_register_adapters",
        AdapterMethod,
        "adapter methods",
        "adapter method",
        "adapter",
        "method",
        default="lora",
    ),
    Kind(
        "optimizer",
        "ft_register_optimizers",
        OptimizerFactory,
        "optimizers",
        "optimizer",
        "optimizer",
        default="adamw",
    ),
    Kind(
        "stage",
        "ft_register_stages",
        TrainingStage,
        "training stages",
        "training stage",
        "stage",
        default="sft",
    ),
    Kind("logger", "ft_register_loggers", TrainingLogger, "loggers", "logger", "loggers", many=True),
    Kind("dataset_format", "ft_register_dataset_formats", DatasetFormat, "dataset formats", "dataset format"),
    Kind(
        "model_patch",
        "ft_register_model_patches",
        ModelPatch,
        "model patches / kernels",
        "model patch",
        "patches",
        many=True,
    ),
    Kind(
        "inference_engine",
        "ft_register_inference_engines",
        InferenceEngine,
        "inference engines",
        "inference engine",
    ),
    Kind("cli_command", "ft_register_cli_commands", CliCommand, "CLI commands", "CLI command"),
    Kind("config_section", "ft_register_config_sections", ConfigSection, "config sections", "config section"),
)
KINDS_BY_KEY: dict[str, Kind] = {k.key: k for k in KINDS}
#: Kinds selected by a config section, by section name.
SECTION_KINDS: dict[str, Kind] = {k.section: k for k in KINDS if k.section}
