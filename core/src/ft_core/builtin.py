"""Core's own plugin: the components that ship with ft-core, registered through the same hooks as any plugin
(distribution ``ft-core``). Import-light like every entry-point module."""

from __future__ import annotations

from ft_core.api.components import CliCommand, DatasetFormat, InferenceEngine
from ft_core.api.hookspecs import Register, hookimpl
from ft_core.commands.chat import ChatCommand
from ft_core.commands.docs_cmd import DocsCommand
from ft_core.commands.import_lf import ImportLfCommand
from ft_core.commands.plugin_new import PluginCommand
from ft_core.commands.plugins_cmd import PluginsCommand
from ft_core.commands.run import CancelCommand, PlanCommand, PrepareCommand, RunCommand, ValidateCommand
from ft_core.commands.template_cmd import TemplateCommand
from ft_core.engine.data.formats import AlpacaFormat, ShareGptFormat, TextFormat
from ft_core.engine.inference.hf import HfEngine


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand]) -> None:
    register("run", RunCommand())
    register("validate", ValidateCommand())
    register("plan", PlanCommand())
    register("prepare", PrepareCommand())
    register("cancel", CancelCommand())
    register("plugins", PluginsCommand())
    register("template", TemplateCommand())
    register("docs", DocsCommand())
    register("chat", ChatCommand())
    register("import-lf", ImportLfCommand())
    register("plugin", PluginCommand())


@hookimpl
def ft_register_dataset_formats(register: Register[DatasetFormat]) -> None:
    register("alpaca", AlpacaFormat())
    register("sharegpt", ShareGptFormat())
    register("text", TextFormat())


@hookimpl
def ft_register_inference_engines(register: Register[InferenceEngine]) -> None:
    register("hf", HfEngine())
