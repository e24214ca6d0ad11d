"""Hook specifications of ft-core: the only contract between the core and its plugins.

A plugin is a module exposed under the ``ft_core`` entry-point group. It implements any of the hooks below with
the :data:`hookimpl` marker (pluggy's options work: ``specname=``, ``tryfirst=``, ``trylast=``, ``wrapper=True``).
A decorated function whose name matches no hook fails the plugin's load, naming the closest hook.

**Registration hooks** ``ft_register_<kind>(register)`` run once per plugin when the plugin manager is built
(every CLI call). Core owns the registries; a plugin calls ``register(name, component)`` once per component:

``name``
    lower-case identifier used in configs (``[a-z0-9][a-z0-9_.-]*``).
``component``
    an instance of the kind's base class (:mod:`ft_core.api.components`); anything else fails the plugin's load.

A name that another distribution also registers for the same kind is a name clash, never last-one-wins: every
registration stays selectable by its qualified name ``<distribution>:<name>``. If exactly one of them is first-party
(``ft-core``, ``ft-core-*``), the plain name keeps selecting it and a warning names both distributions; otherwise
the plain name is ambiguous (selecting it is an error listing the qualified names; strict mode fails at load). If a registration hook raises, the plugin is
marked failed and nothing it registered is kept; other plugins keep working. Registration must be cheap: import
no torch, transformers or backend library in the entry-point module or in these hooks.

**Lifecycle hooks** run during ``ft-core run`` only in the run's *active* plugins: core's built-ins, plugins one
of whose components the config selects (any section, the chat template and the model family included), plugins
whose own config section the config sets, and plugins that switch themselves on with
:func:`ft_activate_by_default`; ``plugins.disable`` in a config switches a plugin off. The run manifest lists every
active plugin with its reason. They run in the order given here — except ``ft_adjust_parameter_groups``, which runs when the trainer
creates its optimizer at the start of training (after ``ft_before_train``); the ``run`` argument is the
:class:`~ft_core.api.context.RunContext`. ``docs/hook-reference.md`` gives the exact call order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
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
    from ft_core.api.config import RunConfig
    from ft_core.api.context import RunContext
    from ft_core.api.descriptors import ChatTemplate, ConfigSection, ModelFamily
    from ft_core.api.events import RunEvent

PROJECT_NAME = "ft_core"

#: Marker for hook specifications (used by core only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marker for hook implementations: decorate your hook functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

ComponentT = TypeVar("ComponentT", contravariant=True)


class Register(Protocol[ComponentT]):
    """The ``register`` callable a registration hook receives: ``register(name, component)``."""

    def __call__(self, name: str, component: ComponentT, /) -> None: ...


# ------------------------------------------------------------------------------------------ registration hooks
@hookspec
def ft_register_model_families(register: Register[ModelFamily]) -> None:
    """Register model families.

    :param register: ``register(name, ModelFamily(...))``. A ``ModelFamily`` maps ``config.model_type`` values to
        the default chat template, the decoder-layer path and the LoRA ``all`` targets; the run picks the family
        whose ``model_types`` holds the base model's ``model_type``.

    Since 0.1.0.
    """


@hookspec
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register chat templates.

    :param register: ``register(name, ChatTemplate(jinja=..., stop_words=(...)))``; selected by
        ``template: <name>`` and checked at start-up against the tokenizer's own template.

    Since 0.1.0.
    """


@hookspec
def ft_register_quantizers(register: Register[Quantizer[Any]]) -> None:
    """Register weight quantizers.

    :param register: ``register(name, MyQuantizer())`` with a ``Quantizer`` subclass; selected by
        ``quantization.method``.

    Since 0.1.0.
    """


@hookspec
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    """Register adapter methods.

    :param register: ``register(name, MyAdapter())`` with an ``AdapterMethod`` subclass; selected by
        ``adapter.method``.

    Since 0.1.0.
    """


@hookspec
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    """Register optimizers.

    :param register: ``register(name, MyOptimizer())`` with an ``OptimizerFactory`` subclass; selected by
        ``optimizer.name``.

    Since 0.1.0 (``param_groups`` / ``create`` since 0.2.0).
    """


@hookspec
def ft_register_stages(register: Register[TrainingStage[Any]]) -> None:
    """Register training stages.

    :param register: ``register(name, MyStage())`` with a ``TrainingStage`` subclass; selected by ``stage.name``.

    Since 0.1.0 (stages own their pipeline since 0.2.0).
    """


@hookspec
def ft_register_loggers(register: Register[TrainingLogger[Any]]) -> None:
    """Register metric loggers.

    :param register: ``register(name, MyLogger())`` with a ``TrainingLogger`` subclass; selected by
        ``loggers[].name``.

    Since 0.1.0.
    """


@hookspec
def ft_register_dataset_formats(register: Register[DatasetFormat[Any]]) -> None:
    """Register dataset formats.

    :param register: ``register(name, MyFormat())`` with a ``DatasetFormat`` subclass; selected by
        ``formatting`` in ``dataset_info.json``.

    Since 0.1.0.
    """


@hookspec
def ft_register_model_patches(register: Register[ModelPatch[Any]]) -> None:
    """Register model patches and kernels.

    :param register: ``register(name, MyPatch())`` with a ``ModelPatch`` subclass; selected by
        ``patches[].name``.

    Since 0.1.0.
    """


@hookspec
def ft_register_inference_engines(register: Register[InferenceEngine[Any]]) -> None:
    """Register inference engines.

    :param register: ``register(name, MyEngine())`` with an ``InferenceEngine`` subclass; selected by
        ``ft-core chat --engine``.

    Since 0.1.0.
    """


@hookspec
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    """Register ``ft-core`` sub-commands.

    :param register: ``register(name, MyCommand())`` with a ``CliCommand`` subclass; the name is the sub-command.

    Since 0.1.0.
    """


@hookspec
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    """Register top-level config sections of a plugin.

    :param register: ``register(name, ConfigSection(schema=MyOptions))``; a config's ``name:`` section is
        validated against the dataclass ``MyOptions`` (unknown keys and wrong types are errors) and read with
        ``run.config.section(name)``.

    Since 0.2.0.
    """


# --------------------------------------------------------------------------------------------- lifecycle hooks
@hookspec
def ft_activate_by_default(config: RunConfig) -> str | None:
    """Switch this plugin on for a run in which none of its components is selected and its config section is unset.

    Called once per run for each such plugin (and only with that plugin's own implementation), before the config's
    cross-section rules. A plugin that acts on every run of some kind (Liger kernels on CUDA GPU runs) returns the
    reason; ``plugins.disable: [NAME]`` in a config still switches it off.

    :param config: the validated config.
    :return: why the plugin acts in this run (recorded in the plan and the manifest), or ``None`` to stay off.

    Since 0.3.0.
    """


@hookspec
def ft_validate_config(config: RunConfig) -> list[str] | None:
    """Check rules that span sections, before anything loads (also in ``ft-core validate``).

    :param config: the validated config (sections typed, components selected).
    :return: problems as ``"section.key: what is wrong and what to do"`` strings (or ``None``); every
        problem of every plugin is reported together.

    Since 0.2.0.
    """


@hookspec
def ft_adjust_model_config(model_config: Any, run: RunContext, role: str) -> None:
    """Change the Hugging Face model config before weights load (RoPE scaling, attention, dropout ...).

    :param model_config: the ``transformers.PretrainedConfig``, changed in place.
    :param run: the run.
    :param role: which model is loading (``policy``, ``reference``, ``reward``, ``value``).

    Since 0.2.0.
    """


@hookspec(firstresult=True)
def ft_load_model(
    run: RunContext, role: str, model_config: Any, load_kwargs: dict[str, Any], model_folder: str, head: str
) -> Any | None:
    """Load the model yourself (e.g. Unsloth); the first non-``None`` result wins, else core loads it with the auto
    class of the role's head: ``AutoModelForCausalLM.from_pretrained(model_folder, config=model_config,
    **load_kwargs)`` for a causal LM (``auto_model_class(head)`` in general).

    An implementation may take any subset of these parameters (pluggy passes those it names).

    :param run: the run (``run.config.model`` says what to load).
    :param role: which model is loading (the name of its :class:`~ft_core.api.components.ModelRole`).
    :param model_config: the adjusted model config (for a classification or value head: ``num_labels`` 1 and the
        tokenizer's ``pad_token_id`` set).
    :param load_kwargs: keyword arguments core would pass (``dtype``, ``quantization_config``, ``device_map`` ...).
    :param model_folder: the local Hugging Face folder of ``model.name_or_path`` (embedded names and GGUF files
        resolved to it): load from here. Since 0.3.0.
    :param head: the role's head, ``causal_lm``, ``sequence_classification`` or ``value``: return a model with that
        head (``ft_core.api.auto_model_class(head)``), or ``None``. Since 0.3.0.
    :return: the loaded model, or ``None`` to leave loading to others.

    Since 0.2.0 (``model_folder`` and ``head`` since 0.3.0).
    """


@hookspec
def ft_patch_model(model: Any, run: RunContext, role: str) -> None:
    """Patch the loaded model in place, before the adapter is applied (kernels, embedding noise, ...).

    :param model: the loaded base model (quantizer preparation and selected ``patches`` already applied).
    :param run: the run.
    :param role: which model was loaded.

    Since 0.2.0.
    """


@hookspec
def ft_model_ready(model: Any, run: RunContext, role: str) -> None:
    """The model to train (or the frozen reference/reward model) is ready: the adapter is applied.

    :param model: the model as the trainer will get it.
    :param run: the run.
    :param role: which model.

    Since 0.2.0.
    """


@hookspec
def ft_adjust_training_arguments(arguments: dict[str, Any], run: RunContext) -> None:
    """Change the keyword arguments of the training-arguments class before it is built (in place).

    :param arguments: keyword arguments for ``TrainingArguments`` (or the stage's TRL config class).
    :param run: the run.

    Since 0.2.0.
    """


@hookspec
def ft_adjust_parameter_groups(groups: list[dict[str, Any]], model: Any, run: RunContext) -> None:
    """Change the optimizer's parameter groups in place (learning rates per group, extra groups ...).

    :param groups: ``[{"params": [...], "weight_decay": ..., ...}, ...]`` as the optimizer factory gave them.
    :param model: the model being trained.
    :param run: the run.

    Since 0.2.0.
    """


@hookspec
def ft_trainer_callbacks(run: RunContext) -> list[Any] | None:
    """Extra ``transformers.TrainerCallback`` objects for the run's trainer.

    :param run: the run.
    :return: a list of callbacks (or ``None``).

    Since 0.2.0.
    """


@hookspec
def ft_before_train(trainer: Any, run: RunContext) -> None:
    """The trainer is built and training is about to start (or resume).

    :param trainer: the trainer.
    :param run: the run.

    Since 0.2.0.
    """


@hookspec
def ft_after_train(trainer: Any, run: RunContext, metrics: dict[str, Any]) -> None:
    """Training finished and the artefact is saved; ``metrics`` may be extended (they go to
    ``train_results.json`` and the manifest).

    :param trainer: the trainer.
    :param run: the run.
    :param metrics: the final training metrics, changed in place.

    Since 0.2.0.
    """


@hookspec
def ft_run_event(event: RunEvent) -> None:
    """A run event (phase, step, eval, checkpoint, finished, failed, cancelled); emitted on the main process.

    :param event: the :class:`~ft_core.api.events.RunEvent`. Must be quick: it runs inside the training loop.

    Since 0.2.0.
    """
