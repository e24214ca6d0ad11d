"""``ft-core run``, ``ft-core validate``, ``ft-core prepare`` and ``ft-core cancel``."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import ClassVar

from ft_core.api.components import CliCommand
from ft_core.api.context import ProcessInfo
from ft_core.api.errors import FtCoreError, RunCancelled

_USAGE = "give the config file: ft-core {command} CONFIG [key=value ...]"


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="the YAML config file")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.max_steps=5"
    )


def _config_path(args: argparse.Namespace, command: str) -> str:
    if not args.config:
        raise FtCoreError(_USAGE.format(command=command))
    return args.config


class RunCommand(CliCommand):
    help: ClassVar[str] = (
        "validate a config, then train (resumes from the newest checkpoint when there is one; Ctrl-C or "
        "`ft-core cancel` stops cleanly, keeping a checkpoint)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.runner import load_and_validate, run_training

        config = load_and_validate(_config_path(args, "run"), args.overrides, args.plugins)
        try:
            run_training(config, args.plugins)
        except RunCancelled as exc:
            if ProcessInfo.current().is_main_process:
                print(f"ft-core: {exc}", file=sys.stderr)
            return 130
        return 0


class ValidateCommand(CliCommand):
    help: ClassVar[str] = "check a config (keys, types, component names, datasets) without loading any model"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.runner import load_and_validate

        path = _config_path(args, "validate")
        config = load_and_validate(path, args.overrides, args.plugins)
        chosen = ", ".join(
            f"{s.section}={s.name} ({s.distribution})"
            for selections in config.selections.values()
            for s in selections
        )
        print(f"{path}: OK ({chosen})")
        return 0


class PrepareCommand(CliCommand):
    help: ClassVar[str] = (
        "prepare and cache a run's data without loading the model (e.g. on a CPU box ahead of a GPU run); "
        "the run then reuses the cache"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.data.prepare import prepare_data
        from ft_core.engine.run.context import EngineRun
        from ft_core.engine.run.runner import load_and_validate, resolve_inputs, say

        config = load_and_validate(_config_path(args, "prepare"), args.overrides, args.plugins)
        run = EngineRun(config, args.plugins, Path(config.training.output_dir))
        started = time.perf_counter()
        resolve_inputs(run)
        prepared = prepare_data(config, args.plugins, run.tokenizer, run.template, run.encoder(), say)
        for note in prepared.notes:
            say(note)
        for name, split in (("train", prepared.train), ("eval", prepared.eval)):
            if split is None:
                continue
            source = "cache" if split.cached else f"{split.samples / max(split.seconds, 1e-9):,.0f} samples/s"
            print(
                f"{name}: {split.rows:,} rows, {split.tokens:,} tokens "
                f"({split.tokens / max(split.rows, 1):,.0f} per row) in {split.seconds:.2f} s ({source})"
            )
        print(f"prepared in {time.perf_counter() - started:.1f} s; `ft-core run` with this config reuses it")
        return 0


def _alive(pid: object) -> bool:
    """Whether a process with this id runs on this machine."""
    if not isinstance(pid, int):
        return True  # unknown: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CancelCommand(CliCommand):
    help: ClassVar[str] = "ask a running run to stop after its current optimizer step, keeping a checkpoint"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", help="the run's output folder")

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.output import MANIFEST, read_manifest
        from ft_core.engine.training.callbacks import CANCEL_FILE

        folder = Path(args.run_dir)
        if not (folder / MANIFEST).is_file():
            raise FtCoreError(f"{folder}: not an ft-core run folder ({MANIFEST} is missing)")
        manifest = read_manifest(folder)
        status = manifest.get("status")
        if status != "running":
            raise FtCoreError(f"{folder}: the run is not running (status {status!r}); nothing to cancel")
        process = manifest.get("process") or {}
        if process.get("host") == socket.gethostname() and not _alive(process.get("pid")):
            raise FtCoreError(
                f"{folder}: its manifest says running, but its process {process.get('pid')} is gone (killed?). "
                f"Nothing to cancel; resume it with `ft-core run {folder / 'config.yaml'}`"
            )
        (folder / CANCEL_FILE).write_text("cancel requested\n", encoding="utf-8")
        print(f"asked {folder} to stop after its current optimizer step (a checkpoint is kept)")
        return 0
