"""The public API of ft-core: everything a plugin imports, and nothing else.

Plugins import from here only (``from ft_core.api import hookimpl, AdapterMethod, ...``); the engine, the CLI and
their modules are internal and may change. Import-light: nothing here imports torch or transformers at import
time.
"""

from ft_core.api.components import (
    AdapterMethod,
    CliCommand,
    Component,
    DatasetFormat,
    InferenceEngine,
    ModelPatch,
    NoOptions,
    OptimizerFactory,
    Quantizer,
    TrainingLogger,
    TrainingStage,
)
from ft_core.api.config import (
    DataSection,
    ModelSection,
    RunConfig,
    Selection,
    TemplateSection,
    TrainingSection,
)
from ft_core.api.context import IGNORE_INDEX, Encoder, ProcessInfo, ResolvedTemplate, RunContext
from ft_core.api.conversation import Conversation, Message
from ft_core.api.datasets import DATA_KINDS, Columns, DataKind, DatasetSpec, Tags
from ft_core.api.descriptors import ChatTemplate, ConfigSection, ModelFamily, VisionSpec
from ft_core.api.errors import (
    ComponentNotFoundError,
    ConfigError,
    DataError,
    FtCoreError,
    OptionsError,
    PluginError,
    RunCancelled,
    TemplateMismatchError,
    did_you_mean,
)
from ft_core.api.events import EVENT_KINDS, PHASES, RunEvent
from ft_core.api.hookspecs import Register, hookimpl
from ft_core.api.inference import (
    ChatDelta,
    ChatModel,
    ChatRequest,
    ChatResponse,
    ChatTarget,
    SamplingOptions,
    Usage,
)
from ft_core.api.kinds import KINDS, KINDS_BY_KEY, Kind
from ft_core.api.modeling import (
    WholeModelAdapter,
    adapter_target_modules,
    count_parameters,
    decaying_parameter_names,
    decoder_layers,
    default_param_groups,
    linear_module_names,
    name_matches,
    report_trainable,
    upcast_trainable_parameters,
)

__all__ = [
    "DATA_KINDS",
    "EVENT_KINDS",
    "IGNORE_INDEX",
    "KINDS",
    "KINDS_BY_KEY",
    "PHASES",
    "AdapterMethod",
    "ChatDelta",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "ChatTarget",
    "ChatTemplate",
    "CliCommand",
    "Columns",
    "Component",
    "ComponentNotFoundError",
    "ConfigError",
    "ConfigSection",
    "Conversation",
    "DataError",
    "DataKind",
    "DataSection",
    "DatasetFormat",
    "DatasetSpec",
    "Encoder",
    "FtCoreError",
    "InferenceEngine",
    "Kind",
    "Message",
    "ModelFamily",
    "ModelPatch",
    "ModelSection",
    "NoOptions",
    "OptimizerFactory",
    "OptionsError",
    "PluginError",
    "ProcessInfo",
    "Quantizer",
    "Register",
    "ResolvedTemplate",
    "RunCancelled",
    "RunConfig",
    "RunContext",
    "RunEvent",
    "SamplingOptions",
    "Selection",
    "Tags",
    "TemplateMismatchError",
    "TemplateSection",
    "TrainingLogger",
    "TrainingSection",
    "TrainingStage",
    "Usage",
    "VisionSpec",
    "WholeModelAdapter",
    "adapter_target_modules",
    "count_parameters",
    "decaying_parameter_names",
    "decoder_layers",
    "default_param_groups",
    "did_you_mean",
    "hookimpl",
    "linear_module_names",
    "name_matches",
    "report_trainable",
    "upcast_trainable_parameters",
]
