"""Core's own plugin: the components that ship with ft-core, registered through the same hooks as any
plugin (distribution ``ft-core``). Import-light like every entry-point module."""

from __future__ import annotations

from ft_core.commands.chat import ChatCommand
from ft_core.commands.plugins_cmd import PluginsCommand
from ft_core.commands.run import RunCommand, ValidateCommand
from ft_core.data.formats import AlpacaFormat, ShareGptFormat, TextFormat
from ft_core.hookspecs import Register, hookimpl
from ft_core.inference.hf import HfEngine


@hookimpl
def ft_register_cli_commands(register: Register) -> None:
    register("run", RunCommand())
    register("validate", ValidateCommand())
    register("plugins", PluginsCommand())
    register("chat", ChatCommand())


@hookimpl
def ft_register_dataset_formats(register: Register) -> None:
    register("alpaca", AlpacaFormat())
    register("sharegpt", ShareGptFormat())
    register("text", TextFormat())


@hookimpl
def ft_register_inference_engines(register: Register) -> None:
    register("hf", HfEngine())
