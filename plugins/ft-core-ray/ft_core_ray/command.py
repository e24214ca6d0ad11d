"""``ft-core ray-run CONFIG [key=value ...]``: validate the config, then run it on Ray Train workers."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import ClassVar

from ft_core.api import CliCommand, FtCoreError


def _resources(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"a JSON mapping such as '{{\"CPU\": 4}}', got {text!r}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value.values()
    ):
        raise argparse.ArgumentTypeError(
            f"a JSON mapping of resource names to positive numbers, got {text!r}"
        )
    return {str(k): float(v) for k, v in value.items()}


def _workers(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1 worker, got {value}")
    return value


class RayRunCommand(CliCommand):
    help: ClassVar[str] = (
        "run a config on a Ray cluster: one ft-core process per Ray Train worker (GPU or CPU), as torchrun would "
        "start them (LLaMA-Factory's USE_RAY)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", help="the YAML config file")
        parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
        parser.add_argument(
            "--workers", type=_workers, default=2, help="Ray Train workers = processes (default 2)"
        )
        parser.add_argument("--gpu", action="store_true", help="one GPU per worker (else CPU workers, gloo)")
        parser.add_argument(
            "--resources",
            type=_resources,
            default=None,
            help="resources per worker as JSON, e.g. '{\"CPU\": 8}' (default: 1 CPU, plus 1 GPU with --gpu)",
        )
        parser.add_argument(
            "--address", default=None, help="the Ray cluster to join (default: RAY_ADDRESS, else a local one)"
        )
        parser.add_argument("--storage", default=None, help="Ray Train's storage folder (default: Ray's)")

    def run(self, args: argparse.Namespace) -> int:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise FtCoreError("ft-core ray-run needs Ray Train: pip install 'ft-core-ray[ray]'")
        checked = subprocess.run(
            [sys.executable, "-m", "ft_core.cli", "validate", args.config, *args.overrides]
        )
        if checked.returncode != 0:
            return checked.returncode
        from ft_core_ray.launch import RaySettings, run_on_ray

        settings = RaySettings(
            workers=args.workers,
            gpu=args.gpu,
            resources=args.resources,
            address=args.address,
            storage=args.storage,
        )
        return run_on_ray(settings, ["run", args.config, *args.overrides])
