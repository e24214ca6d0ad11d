"""``distributed.nproc``: ``ft-core run`` relaunching itself through ``torchrun`` on several local processes.

A run under a launcher already (``torchrun``, ``accelerate launch``, Slurm's ``srun`` with a launcher: ``WORLD_SIZE``
set) never relaunches; the launcher decides the processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from ft_core.api.config import RunConfig
from ft_core.api.errors import ConfigError
from ft_core.engine.run.lock import held_lock_fds

logger = logging.getLogger(__name__)


def under_launcher() -> bool:
    """Whether a launcher started this process (``WORLD_SIZE`` is set)."""
    return "WORLD_SIZE" in os.environ


def local_processes(config: RunConfig) -> int:
    """How many local processes ``distributed.nproc`` asks for: ``auto`` is one per visible CUDA GPU (1 on the CPU);
    more than the visible GPUs of a GPU run is an error."""
    from ft_core.engine.training.arguments import uses_cpu

    nproc = config.distributed.nproc
    on_gpu = not uses_cpu(config.training)
    gpus = 0
    if on_gpu:
        import torch

        gpus = torch.cuda.device_count()
    if nproc == "auto":
        return max(gpus, 1)
    assert isinstance(nproc, int)
    if on_gpu and nproc > gpus:
        raise ConfigError(
            [
                f"distributed.nproc: {nproc} processes, but {gpus} CUDA GPU(s) are visible; use nproc: auto, "
                "at most the GPU count, or training.use_cpu: true for CPU (gloo) processes"
            ]
        )
    return nproc


def torchrun_command(nproc: int, cli_arguments: list[str]) -> list[str]:
    """The ``torchrun`` command that runs ``ft-core <cli_arguments>`` on ``nproc`` local processes (a free port:
    ``--standalone``)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "ft_core.cli",
        *cli_arguments,
    ]


def relaunch(config: RunConfig, cli_arguments: list[str]) -> int | None:
    """Run ``ft-core <cli_arguments>`` through ``torchrun`` when ``distributed.nproc`` asks for several processes,
    or a strategy plugin is selected, and no launcher started this one; return its exit status (``None``: run
    here)."""
    if under_launcher():
        return None
    nproc = local_processes(config)
    if nproc <= 1 and config.distributed.strategy in ("auto", "ddp"):
        return None  # a strategy plugin (FSDP, DeepSpeed) needs a process group even for one process
    command = torchrun_command(nproc, cli_arguments)
    logger.info(f"distributed.nproc: {nproc} processes through torchrun")
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # torchrun inherits the output folder's lock (ft_core.engine.run.lock): it lasts while any process of the run lives
    return subprocess.run(command, env=env, check=False, pass_fds=held_lock_fds()).returncode
