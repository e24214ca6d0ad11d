"""One run per output folder: the run's main process holds an advisory lock (``fcntl.flock``) on
``<output_dir>/.ft-core.lock`` from before the data is prepared until the run ends.

The kernel drops the lock when the process that holds it dies, so a run killed with SIGKILL leaves no stuck lock;
the file itself stays (it names the last holder). A second ``ft-core run`` into the folder is refused at once, naming
the process that holds it. In a multi-process run only one process holds the lock: the ``ft-core run`` that relaunches
itself through ``torchrun`` (its ``torchrun`` inherits the lock, so it lasts while any process of the run lives), or
rank 0 under an outside launcher; the other ranks never take it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from ft_core.api.config import RunConfig
from ft_core.api.errors import FtCoreError
from ft_core.engine.run import distributed

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

LOCK_FILE = ".ft-core.lock"
#: The output folder this process's parent (the ``ft-core run`` that relaunched through ``torchrun``) holds.
HELD_ENV = "FT_CORE_HELD_OUTPUT_DIR"
#: File descriptors of the locks this process holds (a relaunch hands them to ``torchrun``).
_HELD: dict[str, int] = {}


def held_lock_fds() -> tuple[int, ...]:
    """The open lock files of this process, for a child process that must keep the lock alive while it runs."""
    return tuple(_HELD.values())


@contextlib.contextmanager
def hold_output_dir(config: RunConfig) -> Iterator[None]:
    """Hold ``training.output_dir`` for this run (creating the folder); refuse with a clear error when another
    live run holds it, or when the folder cannot be written. Re-entrant; a no-op on ranks other than 0 and in the
    processes of a relaunch whose parent holds the folder."""
    folder = Path(config.training.output_dir).expanduser()
    try:
        key = str(folder.resolve())
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise FtCoreError(f"training.output_dir: cannot use {folder}: {exc.strerror or exc}") from None
    if key in _HELD or os.environ.get(HELD_ENV) == key or not distributed.process_info().is_main_process:
        yield
        return
    fd = _acquire(folder)
    _HELD[key] = fd
    previous = os.environ.get(HELD_ENV)
    os.environ[HELD_ENV] = key  # inherited by a torchrun relaunch: its ranks see that the folder is held
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(HELD_ENV, None)
        else:
            os.environ[HELD_ENV] = previous
        del _HELD[key]
        os.close(fd)  # releases the lock (the file stays: deleting it would race a run locking it now)


def holding_output_dir(
    function: Callable[Concatenate[RunConfig, P], R],
) -> Callable[Concatenate[RunConfig, P], R]:
    """Decorate a function of a run's config so that it runs holding the run's output folder."""

    @functools.wraps(function)
    def holding(config: RunConfig, *args: P.args, **kwargs: P.kwargs) -> R:
        with hold_output_dir(config):
            return function(config, *args, **kwargs)

    return holding


def _acquire(folder: Path) -> int:
    """Create ``folder``, check it is writable and lock its lock file; the open file descriptor."""
    import fcntl

    try:
        if folder.exists() and not folder.is_dir():
            raise FtCoreError(f"training.output_dir: {folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FtCoreError(f"training.output_dir: cannot create {folder}: {exc.strerror or exc}") from None
    path = folder / LOCK_FILE
    try:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise FtCoreError(
            f"training.output_dir: {folder} is not writable ({exc.strerror or exc}); the run writes its "
            "checkpoints, manifest and model there. Give a folder you can write to, or fix its permissions"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            logger.warning(
                f"cannot lock {path} ({exc.strerror or exc}); nothing stops a second run into {folder}"
            )
            return fd
        holder = _holder(fd)
        os.close(fd)
        raise FtCoreError(
            f"training.output_dir: {folder} is in use by another ft-core run ({holder}). One run per folder: wait "
            f"for it to end, stop it with `ft-core cancel {folder}`, or give this run another training.output_dir"
        ) from None
    _record_holder(fd)
    return fd


def _record_holder(fd: int) -> None:
    """Write who holds the lock into the lock file (best effort: a full disk must not stop the run here)."""
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["ft-core", *sys.argv[1:]]),
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)


def _holder(fd: int) -> str:
    """The holder a lock file names, in words."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return "its process did not say which it is"
    return (
        f"process {holder.get('pid')} on {holder.get('host', 'an unknown host')}, since {holder.get('since', '?')}: "
        f"{holder.get('command', 'ft-core run')}"
    )
