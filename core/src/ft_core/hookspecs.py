"""Hook specifications of ft-core: the only contract between the core and its plugins.

A plugin is a module exposed under the ``ft_core`` entry-point group. It implements any of the hooks
below with the :data:`hookimpl` marker. Every hook has the same shape, ``ft_register_<kind>(register)``:
core owns the registries; a plugin only calls ``register(name, component)`` once per component.

``register(name: str, component) -> None``
    ``name``: lower-case identifier used in configs (``[a-z0-9][a-z0-9_.-]*``).
    ``component``: an instance of the kind's base class from :mod:`ft_core.components`.
    A name that another distribution also registers for the same kind is a conflict naming both
    distributions: neither is used (selecting it is an error; strict mode fails at load). Registering a
    wrong type makes the plugin fail to load, with an error naming it.

Registration must be cheap: do not import torch, transformers or any backend library at module level of
an entry-point module or inside these hooks; import them inside the component's methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "ft_core"

#: Marker for hook specifications (used by core only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marker for hook implementations: decorate your ``ft_register_*`` functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[[str, Any], None]


@hookspec
def ft_register_model_families(register: Register) -> None:
    """Register model families.

    ``register(name, ModelFamily(...))``: ``ModelFamily`` maps ``config.model_type`` values to the
    default chat template, the decoder-layer path and the LoRA ``all`` targets.

    Since 0.1.0.
    """


@hookspec
def ft_register_chat_templates(register: Register) -> None:
    """Register chat templates.

    ``register(name, ChatTemplate(jinja=..., stop_words=(...)))``: selected by ``template: <name>``.

    Since 0.1.0.
    """


@hookspec
def ft_register_quantizers(register: Register) -> None:
    """Register weight quantizers (subclasses of ``Quantizer``), selected by ``quantization.method``.

    Since 0.1.0.
    """


@hookspec
def ft_register_adapters(register: Register) -> None:
    """Register adapter methods (subclasses of ``AdapterMethod``), selected by ``adapter.method``.

    Since 0.1.0.
    """


@hookspec
def ft_register_optimizers(register: Register) -> None:
    """Register optimizers (subclasses of ``OptimizerFactory``), selected by ``optimizer.name``.

    Since 0.1.0.
    """


@hookspec
def ft_register_stages(register: Register) -> None:
    """Register training stages (subclasses of ``TrainingStage``), selected by ``stage.name``.

    Since 0.1.0.
    """


@hookspec
def ft_register_loggers(register: Register) -> None:
    """Register metric loggers (subclasses of ``TrainingLogger``), selected by ``loggers[].name``.

    Since 0.1.0.
    """


@hookspec
def ft_register_dataset_formats(register: Register) -> None:
    """Register dataset formats (subclasses of ``DatasetFormat``), selected by ``formatting`` in
    ``dataset_info.json``.

    Since 0.1.0.
    """


@hookspec
def ft_register_model_patches(register: Register) -> None:
    """Register model patches / kernels (subclasses of ``ModelPatch``), selected by ``patches[].name``.

    Since 0.1.0.
    """


@hookspec
def ft_register_inference_engines(register: Register) -> None:
    """Register inference engines (subclasses of ``InferenceEngine``), selected by ``ft-core chat --engine``.

    Since 0.1.0.
    """


@hookspec
def ft_register_cli_commands(register: Register) -> None:
    """Register ``ft-core`` sub-commands (subclasses of ``CliCommand``); the name is the sub-command.

    Since 0.1.0.
    """
