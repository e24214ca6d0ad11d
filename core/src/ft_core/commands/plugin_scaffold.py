"""The files ``ft-core plugin new KIND NAME`` writes: one working minimal component per kind, its options dataclass,
tests written with :mod:`ft_core.testing`, a README and a CI script.

Placeholders in the texts: ``__NAME__`` (the registered name), ``__DIST__`` (the distribution), ``__PKG__`` (the
import package), ``__CLASS__`` (a CamelCase stem), ``__KIND__`` (the kind's key), ``__HOOK__`` (its registration
hook), ``__SINGULAR__`` (``chat template``), ``__FTVERSION__`` (the ft-core version the plugin was made with).
"""

from __future__ import annotations

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "ft-core plugin: the `__NAME__` __SINGULAR__."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["ft-core>=__FTVERSION__"]

[project.optional-dependencies]
test = ["pytest"]

# ft-core finds the plugin through this entry point (group `ft_core`); the module holds the @hookimpl functions.
[project.entry-points.ft_core]
__NAME__ = "__PKG__"

[tool.setuptools]
packages = ["__PKG__"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

README = """\
# __DIST__

An [ft-core](https://github.com/) plugin: the `__NAME__` __SINGULAR__ (kind `__KIND__`, hook `__HOOK__`).

```bash
pip install -e .            # ft-core finds it through the `ft_core` entry point
ft-core plugins             # lists __DIST__ and `__NAME__`
bash ci.sh                  # install with the test extra and run the tests
```

__USAGE__

Layout: `__PKG__/__init__.py` holds the component, its options dataclass and the `@hookimpl` that registers it;
`tests/` checks it with `ft_core.testing` (fixtures `tiny_tokenizer`, `tiny_model`, `tiny_model_dir`,
`make_plugins`, `make_config` and the conformance checks). Keep the module import-light: import torch /
transformers inside the methods that need them (`check_import_light` tests this).
"""

CI = """\
#!/usr/bin/env bash
# CI for __DIST__: install it (with ft-core from the index or an existing environment) and run its tests.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -e ".[test]"
python -m pytest -q "$@"
"""

GITIGNORE = "__pycache__/\n*.egg-info/\n.pytest_cache/\nbuild/\n"

HEADER = '''\
"""ft-core plugin __DIST__: the `__NAME__` __SINGULAR__.

Import-light: registering imports only ft_core.api; heavy libraries are imported where they are used.
"""

from __future__ import annotations

'''

TEST_HEADER = '''\
"""Tests of __DIST__, written with ft-core's public testing kit (``ft_core.testing``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import __PKG__
from ft_core.testing.import_light import check_import_light


def _plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(__PKG__, distribution="__DIST__")


def test_registers(make_plugins: Callable[..., Any]) -> None:
    plugins = _plugins(make_plugins)
    assert "__NAME__" in plugins.names("__KIND__")
    assert plugins.registration("__KIND__", "__NAME__").distribution == "__DIST__"


def test_registration_is_import_light() -> None:
    check_import_light("__PKG__")
'''

#: kind -> (module body, extra tests, README usage paragraph)
KIND_FILES: dict[str, tuple[str, str, str]] = {}

KIND_FILES["model_family"] = (
    '''\
from ft_core.api import ModelFamily, Register, hookimpl

__version__ = "0.1.0"

#: Which models the family covers (``config.model_type``), its chat template and its LoRA targets. Replace
#: ``model_types`` with your architecture's ``model_type``.
FAMILY = ModelFamily(
    model_types=("__NAME__",),
    default_template="chatml",
    decoder_layers="model.layers",
    description="__NAME__ models",
    templates=("chatml",),
)


@hookimpl
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register the `__NAME__` family."""
    register("__NAME__", FAMILY)
''',
    """

def test_covers_its_model_type(make_plugins: Callable[..., Any]) -> None:
    family = _plugins(make_plugins).get("model_family", "__NAME__")
    assert family.covers("__NAME__")
    assert not family.covers("some_other_type")
""",
    "A model whose `config.model_type` is one of the family's `model_types` gets its template suggestion, LoRA "
    "targets and decoder-layer path.",
)

KIND_FILES["chat_template"] = (
    '''\
from ft_core.api import ChatTemplate, Register, hookimpl

__version__ = "0.1.0"

#: ``<|role|>\\n{content}{eos}\\n`` per turn; the generation prompt is ``<|assistant|>\\n``.
JINJA = r"""{%- for message in messages %}
    {%- if message['role'] in ('system', 'user', 'assistant') %}
        {{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}
    {%- endif %}
    {%- if loop.last and add_generation_prompt %}
        {{- '<|assistant|>\\n' }}
    {%- endif %}
{%- endfor %}
"""


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register the `__NAME__` template."""
    register("__NAME__", ChatTemplate(jinja=JINJA, description="__NAME__: <|role|> turns ending with EOS"))
''',
    """

def test_conformance(make_plugins: Callable[..., Any], tiny_tokenizer: Any) -> None:
    from ft_core.testing.conformance import check_chat_template

    template = _plugins(make_plugins).get("chat_template", "__NAME__")
    check_chat_template(template, tiny_tokenizer, "__NAME__")


def test_rendering(make_plugins: Callable[..., Any], tiny_tokenizer: Any) -> None:
    template = _plugins(make_plugins).get("chat_template", "__NAME__")
    messages = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}]
    eos = tiny_tokenizer.eos_token
    text = tiny_tokenizer.apply_chat_template(messages, chat_template=template.jinja, tokenize=False)
    assert text == f"<|user|>\\nHi!{eos}\\n<|assistant|>\\nHello.{eos}\\n"
""",
    "Select it with `template: __NAME__`; see how it renders with `ft-core template show __NAME__`.",
)

KIND_FILES["quantizer"] = (
    '''\
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import OptionsError, Quantizer, Register, RunContext, hookimpl

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of `quantization: {method: __NAME__}`."""

    #: Bits of the simulated weight grid (per output row, symmetric).
    bits: int = 8

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 8:
            raise OptionsError(f"bits: between 2 and 8, got {self.bits}")


class __CLASS__Quantizer(Quantizer[__CLASS__Options]):
    """Simulated ("fake") quantization: after loading, every linear weight is rounded to a `bits`-bit grid and
    kept in its dtype. A starting point: a real quantizer returns a `quantization_config` from `load_kwargs`."""

    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: linear weights rounded to a k-bit grid (simulated quantization)"

    def load_kwargs(self, options: __CLASS__Options, model_config: Any) -> dict[str, Any]:
        return {}

    def prepare(self, model: Any, options: __CLASS__Options, run: RunContext) -> Any:
        import torch

        levels = 2 ** (options.bits - 1) - 1
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear) and module is not model.get_output_embeddings():
                    weight = module.weight
                    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / levels
                    weight.copy_((weight / scale).round().clamp(-levels, levels) * scale)
                    weight.requires_grad_(False)
        return model


@hookimpl
def ft_register_quantizers(register: Register[Quantizer[Any]]) -> None:
    """Register the `__NAME__` quantizer."""
    register("__NAME__", __CLASS__Quantizer())
''',
    """

def test_options_are_checked() -> None:
    import pytest

    from ft_core.api import OptionsError

    with pytest.raises(OptionsError):
        __PKG__.__CLASS__Options(bits=1)


def test_quantizes_a_tiny_model(make_plugins: Callable[..., Any], tiny_model_dir: str) -> None:
    import torch

    from ft_core.testing.quantizers import load_quantized, quantizer_run, text_batch

    quantizer = _plugins(make_plugins).get("quantizer", "__NAME__")
    options = __PKG__.__CLASS__Options(bits=4)
    model = quantizer.prepare(load_quantized(quantizer, tiny_model_dir, options), options, quantizer_run())
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert weight.unique(dim=None).numel() <= 15 * weight.shape[0]  # at most 2 x 7 + 1 levels per row
    loss = model(**text_batch(tiny_model_dir)).loss
    assert torch.isfinite(loss)
""",
    "Select it with `quantization: {method: __NAME__, bits: 4}` (with a LoRA adapter: quantized weights train only "
    "through an adapter).",
)

KIND_FILES["adapter"] = (
    '''\
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import AdapterMethod, ModelFamily, OptionsError, Register, WholeModelAdapter, hookimpl

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of `adapter: {method: __NAME__}`."""

    #: Parameters whose name contains one of these strings train; every other parameter is frozen.
    trainable: list[str] = ("norm",)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "trainable", list(self.trainable))
        if not self.trainable:
            raise OptionsError("trainable: name at least one parameter name part, e.g. [norm]")


class __CLASS__Adapter(WholeModelAdapter[__CLASS__Options]):
    """Trains only the parameters whose names match `trainable` (the norms by default); saves the whole model."""

    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: train only the parameters whose names match `trainable`"

    def apply(self, model: Any, options: __CLASS__Options, family: ModelFamily | None) -> Any:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(any(part in name for part in options.trainable))
        return model


@hookimpl
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    """Register the `__NAME__` adapter method."""
    register("__NAME__", __CLASS__Adapter())
''',
    """

def test_conformance(make_plugins: Callable[..., Any], tiny_model: Any, tmp_path: Any) -> None:
    from ft_core.testing.conformance_adapters import check_adapter

    adapter = _plugins(make_plugins).get("adapter", "__NAME__")
    check_adapter(adapter, __PKG__.__CLASS__Options(), tiny_model, tmp_path)
""",
    "Select it with `adapter: {method: __NAME__, trainable: [norm]}`.",
)

KIND_FILES["optimizer"] = (
    '''\
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import OptimizerFactory, OptionsError, Register, hookimpl

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of `optimizer: {name: __NAME__}` (the learning rate comes from `training.learning_rate`)."""

    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise OptionsError(f"momentum: a number in [0, 1), got {self.momentum}")


class __CLASS__Optimizer(OptimizerFactory[__CLASS__Options]):
    """SGD with momentum over the engine's parameter groups."""

    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: SGD with momentum (torch.optim.SGD)"

    def create(self, options: __CLASS__Options, param_groups: list[dict[str, Any]], args: Any) -> Any:
        import torch

        return torch.optim.SGD(
            param_groups,
            lr=args.learning_rate,
            momentum=options.momentum,
            nesterov=options.nesterov and options.momentum > 0,
            weight_decay=args.weight_decay,
        )


@hookimpl
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    """Register the `__NAME__` optimizer."""
    register("__NAME__", __CLASS__Optimizer())
''',
    """

def test_conformance(make_plugins: Callable[..., Any], tiny_model: Any) -> None:
    from ft_core.testing.conformance_optimizers import check_optimizer

    optimizer = _plugins(make_plugins).get("optimizer", "__NAME__")
    check_optimizer(optimizer, __PKG__.__CLASS__Options(), tiny_model)
""",
    "Select it with `optimizer: {name: __NAME__, momentum: 0.9}`.",
)

KIND_FILES["stage"] = (
    '''\
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import (
    IGNORE_INDEX,
    Conversation,
    DataKind,
    Encoder,
    OptionsError,
    Register,
    RunContext,
    TrainingStage,
    hookimpl,
)

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of `stage: {name: __NAME__}`."""

    #: Keep only conversations with at most this many assistant turns (0 = all).
    max_answers: int = 0

    def __post_init__(self) -> None:
        if self.max_answers < 0:
            raise OptionsError(f"max_answers: 0 or more, got {self.max_answers}")


class __CLASS__Stage(TrainingStage[__CLASS__Options]):
    """Supervised fine-tuning (loss on the assistant turns) with the Hugging Face Trainer: the base class builds
    the trainer from `arguments_class`, `collator` and the policy model."""

    data_kind: ClassVar[DataKind] = "conversation"
    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: supervised fine-tuning on conversations"
    supports_packing: ClassVar[bool] = True

    def preprocess(
        self, samples: list[Conversation], encoder: Encoder, options: __CLASS__Options
    ) -> list[dict[str, list[int]]]:
        rows = []
        for conversation in samples:
            answers = sum(1 for m in conversation.messages if m.role == "assistant")
            if options.max_answers and answers > options.max_answers:
                continue
            rows += encoder.encode_supervised(conversation)
        return rows

    def collator(self, run: RunContext) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(run.tokenizer, label_pad_token_id=IGNORE_INDEX)


@hookimpl
def ft_register_stages(register: Register[TrainingStage[Any]]) -> None:
    """Register the `__NAME__` stage."""
    register("__NAME__", __CLASS__Stage())
''',
    """

def _samples() -> list[Any]:
    from ft_core.api import Conversation, Message

    return [
        Conversation([Message("user", f"Question {i}?"), Message("assistant", f"Answer {i}.")]) for i in range(4)
    ]


def test_conformance(make_plugins: Callable[..., Any], tiny_tokenizer: Any) -> None:
    from ft_core.testing import make_encoder
    from ft_core.testing.conformance_stages import check_stage

    stage = _plugins(make_plugins).get("stage", "__NAME__")
    rows = check_stage(stage, __PKG__.__CLASS__Options(), make_encoder(tiny_tokenizer), _samples())
    assert len(rows) == 4


def test_config_validates(make_config: Callable[..., Any]) -> None:
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate

    plugins = load_plugins(strict=True, extra=[(__PKG__, "__DIST__")])
    config = load_and_validate(str(make_config(stage={"name": "__NAME__", "max_answers": 1})), [], plugins)
    assert config.stage.name == "__NAME__" and config.stage.options.max_answers == 1
""",
    "Select it with `stage: {name: __NAME__}`; `ft_core.testing.run_config(config, __PKG__)` runs it end to end.",
)

KIND_FILES["logger"] = (
    '''\
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import Register, TrainingLogger, hookimpl

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of `loggers: [{name: __NAME__}]`."""

    #: File (relative to the run folder) that gets one JSON object per logging step.
    file: str = "__NAME__.jsonl"


class __CLASS__Logger(TrainingLogger[__CLASS__Options]):
    """Appends every logged metrics dict (with the step) to a JSON-lines file in the run folder."""

    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: metrics as JSON lines in the run folder"

    def callback(self, options: __CLASS__Options, run_dir: str) -> Any:
        from transformers import TrainerCallback

        path = Path(run_dir) / options.file

        class _Callback(TrainerCallback):  # type: ignore[misc]
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                if state.is_world_process_zero and logs:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("a", encoding="utf-8") as out:
                        out.write(json.dumps({"step": state.global_step, **logs}) + "\\n")

        return _Callback()


@hookimpl
def ft_register_loggers(register: Register[TrainingLogger[Any]]) -> None:
    """Register the `__NAME__` logger."""
    register("__NAME__", __CLASS__Logger())
''',
    """

def test_callback_writes_json_lines(make_plugins: Callable[..., Any], tmp_path: Any) -> None:
    import json
    from types import SimpleNamespace

    logger = _plugins(make_plugins).get("logger", "__NAME__")
    callback = logger.callback(__PKG__.__CLASS__Options(), str(tmp_path))
    state = SimpleNamespace(is_world_process_zero=True, global_step=3)
    callback.on_log(None, state, None, logs={"loss": 1.5})
    lines = (tmp_path / "__NAME__.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 3, "loss": 1.5}]
""",
    "Select it with `loggers: [__NAME__]` (or `loggers: [{name: __NAME__, file: metrics.jsonl}]`).",
)

KIND_FILES["dataset_format"] = (
    '''\
from typing import Any, ClassVar

from ft_core.api import Conversation, DatasetFormat, DatasetSpec, Message, NoOptions, Register, hookimpl

__version__ = "0.1.0"


class __CLASS__Format(DatasetFormat[NoOptions]):
    """Rows `{"question": ..., "answer": ...}` (optional `"system"`) as one-turn conversations."""

    produces: ClassVar[str] = "conversation"
    description: ClassVar[str] = "__NAME__: question / answer rows"

    def convert(self, row: dict[str, Any], spec: DatasetSpec) -> Conversation:
        question, answer = row.get("question"), row.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise ValueError("expected string columns 'question' and 'answer'")
        messages = [Message("system", row["system"])] if row.get("system") else []
        return Conversation([*messages, Message("user", question), Message("assistant", answer)])


@hookimpl
def ft_register_dataset_formats(register: Register[DatasetFormat[Any]]) -> None:
    """Register the `__NAME__` dataset format."""
    register("__NAME__", __CLASS__Format())
''',
    """

def _spec() -> Any:
    from ft_core.api import DatasetSpec

    return DatasetSpec(name="demo", file_name="demo.json", dataset_dir=".", info_file="dataset_info.json")


def test_converts_a_row(make_plugins: Callable[..., Any]) -> None:
    fmt = _plugins(make_plugins).get("dataset_format", "__NAME__")
    conversation = fmt.convert({"question": "2+2?", "answer": "4"}, _spec())
    assert [(m.role, m.content) for m in conversation.messages] == [("user", "2+2?"), ("assistant", "4")]


def test_rejects_a_bad_row(make_plugins: Callable[..., Any]) -> None:
    import pytest

    fmt = _plugins(make_plugins).get("dataset_format", "__NAME__")
    with pytest.raises(ValueError, match="question"):
        fmt.convert({"answer": "4"}, _spec())
""",
    'Use it from `dataset_info.json`: `"my_set": {"file_name": "qa.json", "formatting": "__NAME__"}`.',
)

KIND_FILES["model_patch"] = (
    '''\
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import ModelPatch, OptionsError, Register, hookimpl

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of `patches: [{name: __NAME__}]`."""

    #: Dropout probability set on the model config before the weights load (attention dropout).
    attention_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.attention_dropout < 1.0:
            raise OptionsError(f"attention_dropout: a number in [0, 1), got {self.attention_dropout}")


class __CLASS__Patch(ModelPatch[__CLASS__Options]):
    """Sets the model config's attention dropout before loading, and marks the loaded model as patched."""

    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: set attention dropout"

    def patch_config(self, model_config: Any, options: __CLASS__Options) -> None:
        model_config.attention_dropout = options.attention_dropout

    def patch_model(self, model: Any, options: __CLASS__Options) -> Any:
        model.__NAME___patched = True
        return model


@hookimpl
def ft_register_model_patches(register: Register[ModelPatch[Any]]) -> None:
    """Register the `__NAME__` patch."""
    register("__NAME__", __CLASS__Patch())
''',
    """

def test_patches_config_and_model(make_plugins: Callable[..., Any], tiny_model: Any) -> None:
    patch = _plugins(make_plugins).get("model_patch", "__NAME__")
    options = __PKG__.__CLASS__Options(attention_dropout=0.1)
    patch.patch_config(tiny_model.config, options)
    assert tiny_model.config.attention_dropout == 0.1
    assert patch.patch_model(tiny_model, options).__NAME___patched is True
""",
    "Select it with `patches: [{name: __NAME__, attention_dropout: 0.1}]`.",
)

KIND_FILES["inference_engine"] = (
    '''\
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import (
    ChatDelta,
    ChatModel,
    ChatRequest,
    ChatTarget,
    InferenceEngine,
    Register,
    Usage,
    hookimpl,
)

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Options:
    """Options of the `__NAME__` engine (`ft-core chat RUN --engine __NAME__`)."""

    prefix: str = "echo: "


class __CLASS__Model(ChatModel):
    """Answers with the last user message: a stand-in to replace with real generation."""

    def __init__(self, options: __CLASS__Options) -> None:
        self.options = options

    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        last = next((m.get("content") or "" for m in reversed(request.messages) if m.get("role") == "user"), "")
        text = self.options.prefix + str(last)
        prompt = sum(len(str(m.get("content") or "").split()) for m in request.messages)
        yield ChatDelta(text)
        yield ChatDelta("", finish_reason="stop", usage=Usage(prompt, len(text.split())))


class __CLASS__Engine(InferenceEngine[__CLASS__Options]):
    """The `__NAME__` engine: loads nothing, echoes the user."""

    options_schema: ClassVar[type] = __CLASS__Options
    description: ClassVar[str] = "__NAME__: echoes the last user message (a skeleton engine)"

    def load(self, target: ChatTarget, options: __CLASS__Options) -> ChatModel:
        return __CLASS__Model(options)


@hookimpl
def ft_register_inference_engines(register: Register[InferenceEngine[Any]]) -> None:
    """Register the `__NAME__` engine."""
    register("__NAME__", __CLASS__Engine())
''',
    """

def test_answers(make_plugins: Callable[..., Any]) -> None:
    from ft_core.api import ChatRequest, ChatTarget

    engine = _plugins(make_plugins).get("inference_engine", "__NAME__")
    target = ChatTarget(description="none", tokenizer_path="", load_model=lambda dtype: None)
    model = engine.load(target, __PKG__.__CLASS__Options())
    reply = model.complete(ChatRequest(messages=[{"role": "user", "content": "hi there"}]))
    assert reply.text == "echo: hi there" and reply.finish_reason == "stop"
    assert reply.usage.completion_tokens == 3
""",
    "Use it with `ft-core chat RUN_DIR --engine __NAME__`.",
)

KIND_FILES["cli_command"] = (
    '''\
import argparse
from typing import Any, ClassVar

from ft_core.api import CliCommand, Register, hookimpl

__version__ = "0.1.0"


class __CLASS__Command(CliCommand):
    """`ft-core __NAME__`: counts the registered components of a kind."""

    help: ClassVar[str] = "__NAME__: count the registered components of a kind"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", nargs="?", default="chat_template", help="a component kind (chat_template)")

    def run(self, args: argparse.Namespace) -> int:
        names = args.plugins.names(args.kind)
        print(f"{len(names)} {args.kind}: {', '.join(names)}")
        return 0


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    """Register `ft-core __NAME__`."""
    register("__NAME__", __CLASS__Command())
''',
    """

def test_runs(make_plugins: Callable[..., Any], capsys: Any) -> None:
    import argparse

    plugins = _plugins(make_plugins)
    command = plugins.get("cli_command", "__NAME__")
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["cli_command"])
    args.plugins = plugins
    assert command.run(args) == 0
    assert "__NAME__" in capsys.readouterr().out
""",
    "Run it with `ft-core __NAME__`.",
)

KIND_FILES["config_section"] = (
    '''\
from dataclasses import dataclass

from ft_core.api import ConfigSection, OptionsError, Register, RunConfig, hookimpl

__version__ = "0.1.0"


@dataclass(frozen=True)
class __CLASS__Section:
    """The `__NAME__:` config section (every field has a default: a config may leave the section out)."""

    enabled: bool = False
    #: An example setting.
    level: int = 1

    def __post_init__(self) -> None:
        if self.level < 0:
            raise OptionsError(f"level: 0 or more, got {self.level}")


@hookimpl
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    """Register the `__NAME__:` section."""
    register("__NAME__", ConfigSection(schema=__CLASS__Section, description="__NAME__ settings"))


@hookimpl
def ft_validate_config(config: RunConfig) -> list[str]:
    """A rule spanning sections: `__NAME__.enabled` needs a training run with output."""
    section: __CLASS__Section = config.section("__NAME__")
    if section.enabled and not config.training.output_dir:
        return ["__NAME__.enabled: needs training.output_dir"]
    return []
''',
    """

def test_section_validates(make_config: Callable[..., Any]) -> None:
    import pytest

    from ft_core.api import ConfigError
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate

    plugins = load_plugins(strict=True, extra=[(__PKG__, "__DIST__")])
    config = load_and_validate(str(make_config(__NAME__={"enabled": True, "level": 2})), [], plugins)
    assert config.section("__NAME__") == __PKG__.__CLASS__Section(enabled=True, level=2)
    with pytest.raises(ConfigError, match="level"):
        load_and_validate(str(make_config(__NAME__={"level": -1})), [], plugins)
""",
    "Configure it with a top-level `__NAME__: {enabled: true, level: 2}`; read it in a hook with "
    '`run.config.section("__NAME__")`.',
)
