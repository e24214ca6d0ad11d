"""``ft-core run``, ``ft-core validate``, ``ft-core prepare`` and ``ft-core cancel``."""

from __future__ import annotations

import argparse
import json
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


def _cli_arguments(args: argparse.Namespace) -> list[str]:
    """The ``ft-core`` arguments that run this command again (in each process ``distributed.nproc`` starts)."""
    loudness = {-1: ["-q"], 1: ["-v"]}.get(getattr(args, "verbosity", 0) or 0, [])
    return [*loudness, "run", args.config, *args.overrides]


class RunCommand(CliCommand):
    help: ClassVar[str] = (
        "validate a config, then train (resumes from the newest checkpoint when there is one; Ctrl-C or "
        "`ft-core cancel` stops cleanly, keeping a checkpoint)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.launch import relaunch
        from ft_core.engine.run.lock import hold_output_dir
        from ft_core.engine.run.runner import load_and_validate, run_training

        config = load_and_validate(_config_path(args, "run"), args.overrides, args.plugins)
        with hold_output_dir(config):  # one run per folder, refused before any data or weights load
            status = relaunch(config, _cli_arguments(args))
            if status is not None:
                return status
            try:
                run_training(config, args.plugins)
            except RunCancelled as exc:
                if ProcessInfo.current().is_main_process:
                    print(f"ft-core: {exc}", file=sys.stderr)
                return 130
        return 0


class ValidateCommand(CliCommand):
    help: ClassVar[str] = (
        "check a config against every rule: keys, types, component names, datasets, the tokenizer and chat "
        "template, every data row (no weights load)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.runner import load_and_validate

        path = _config_path(args, "validate")
        config = load_and_validate(path, args.overrides, args.plugins, inputs=True)
        chosen = ", ".join(
            f"{s.section}={s.name} ({s.distribution})"
            for selections in config.selections.values()
            for s in selections
        )
        print(f"{path}: OK ({chosen})")
        return 0


class PlanCommand(CliCommand):
    help: ClassVar[str] = (
        "validate a config and print its run plan: components, active plugins, template, data statistics and every "
        "engine decision with its reason (prepares the data, loads no weights)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the plan as the manifest records it")
        parser.add_argument(
            "--no-data", action="store_true", help="skip preparing the data (no data statistics)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.plan import build_plan
        from ft_core.engine.run.runner import load_and_validate

        config = load_and_validate(_config_path(args, "plan"), args.overrides, args.plugins, inputs=True)
        plan, _ = build_plan(config, args.plugins, prepare=not args.no_data)
        if args.json:
            print(json.dumps(plan.manifest(), indent=2, default=str))
        else:
            print("\n".join(plan.describe()))
        return 0


class PrepareCommand(CliCommand):
    help: ClassVar[str] = (
        "prepare and cache a run's data without loading the model (e.g. on a CPU box ahead of a GPU run); "
        "the run then reuses the cache"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.plan import build_plan
        from ft_core.engine.run.runner import load_and_validate

        config = load_and_validate(_config_path(args, "prepare"), args.overrides, args.plugins)
        started = time.perf_counter()
        _, prepared = build_plan(config, args.plugins)
        assert prepared is not None
        splits = [("train", prepared.train), ("eval", prepared.eval)]
        splits += [(f"eval ({name})", split) for name, split in prepared.evals.items()]
        for name, split in splits:
            if split is None:
                continue
            if split.streamed:
                print(f"{name}: streamed (prepared as the trainer reads it)")
                continue
            source = "cache" if split.cached else f"{split.samples / max(split.seconds, 1e-9):,.0f} samples/s"
            print(
                f"{name}: {split.rows:,} rows, {split.tokens:,} tokens "
                f"({split.tokens / max(split.rows, 1):,.0f} per row) in {split.seconds:.2f} s ({source})"
            )
        print(f"prepared in {time.perf_counter() - started:.1f} s; `ft-core run` with this config reuses it")
        return 0


class CancelCommand(CliCommand):
    help: ClassVar[str] = "ask a running run to stop after its current optimizer step, keeping a checkpoint"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", help="the run's output folder")

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.run.output import MANIFEST, read_manifest, run_status
        from ft_core.engine.training.callbacks import CANCEL_FILE

        folder = Path(args.run_dir)
        if not (folder / MANIFEST).is_file():
            raise FtCoreError(f"{folder}: not an ft-core run folder ({MANIFEST} is missing)")
        manifest = read_manifest(folder)
        status = run_status(manifest)
        if status == "interrupted":
            raise FtCoreError(
                f"{folder}: its manifest says running, but its process {manifest['process'].get('pid')} is gone "
                f"(killed?). Nothing to cancel; resume it with `ft-core run {folder / 'config.yaml'}`"
            )
        if status != "running":
            raise FtCoreError(f"{folder}: the run is not running (status {status!r}); nothing to cancel")
        (folder / CANCEL_FILE).write_text("cancel requested\n", encoding="utf-8")
        print(f"asked {folder} to stop after its current optimizer step (a checkpoint is kept)")
        return 0
