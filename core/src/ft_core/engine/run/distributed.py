"""This process's place in a multi-process run (``torchrun`` / ``accelerate launch``) and the barriers it needs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ft_core.api.context import ProcessInfo


def process_info() -> ProcessInfo:
    """Rank, local rank and world size from the launcher's environment (a single process when unset)."""
    return ProcessInfo.current()


def init_process_group(use_cpu: bool) -> None:
    """Join the launcher's process group (gloo on CPU, NCCL on GPUs) once, before anything needs a barrier."""
    if process_info().world_size == 1:
        return
    from accelerate import PartialState

    PartialState(cpu=use_cpu)


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first; the others wait at a barrier and then run it (reading its cache)."""
    info = process_info()
    if info.world_size == 1:
        yield
        return
    import torch.distributed as dist

    if not info.is_main_process:
        dist.barrier()
    try:
        yield
    finally:
        if info.is_main_process:
            dist.barrier()


def destroy_process_group() -> None:
    """Leave the process group at the end of a run (torch warns about a leaked group otherwise)."""
    if process_info().world_size == 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
