"""One ft-core process per Ray Train worker.

Ray Train places the workers (resources, nodes), sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR``
and joins them in a process group of its own. Each worker then starts ``python -m ft_core.cli run CONFIG`` with
that environment and a fresh ``MASTER_PORT`` (rank 0 picks a free port and broadcasts it over Ray's group), so the
run sees what ``torchrun`` would give it: its processes, its strategy (``distributed.strategy``), rank 0 writing
the run folder. A worker whose run fails fails the Ray job.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RaySettings:
    """How many workers Ray Train starts and what each holds."""

    workers: int = 2
    gpu: bool = False
    resources: dict[str, float] | None = None
    address: str | None = None
    storage: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: the ft-core run of this rank, under the torchrun-style environment."""
    import torch.distributed as dist

    port: list[Any] = [_free_port() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(port, src=0)
    env = {**os.environ, "MASTER_PORT": str(port[0])}
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [sys.executable, "-m", "ft_core.cli", *config["arguments"]]
    status = subprocess.run(command, env=env, cwd=config["cwd"]).returncode
    statuses: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(statuses, status)
    failed = [rank for rank, code in enumerate(statuses) if code != 0]
    if failed:
        raise RuntimeError(f"ft-core run failed on rank(s) {failed} (exit statuses {statuses})")


def run_on_ray(settings: RaySettings, arguments: list[str]) -> int:
    """Run ``ft-core <arguments>`` on ``settings.workers`` Ray Train workers; return 0, or 1 when a worker failed."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not ray.is_initialized():
        ray.init(address=settings.address, include_dashboard=False)
    resources = settings.resources or ({"CPU": 1.0, "GPU": 1.0} if settings.gpu else {"CPU": 1.0})
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"arguments": arguments, "cwd": os.getcwd()},  # relative paths as on the driver
        scaling_config=ScalingConfig(
            num_workers=settings.workers, use_gpu=settings.gpu, resources_per_worker=resources
        ),
        torch_config=TorchConfig(backend="nccl" if settings.gpu else "gloo"),
        run_config=RunConfig(name="ft-core", storage_path=settings.storage),
    )
    result = trainer.fit()
    if result.error is not None:
        print(f"ft-core ray-run: {result.error}", file=sys.stderr)
        return 1
    return 0
