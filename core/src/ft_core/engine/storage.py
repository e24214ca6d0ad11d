"""On-disk helpers: the cache root, content hashes, atomically written files and atomically published folders, and
completion markers (what a crash may leave half-written is never read: see the user guide's "Crashes and
resuming")."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ft_core.engine.killpoints import kill_point

CACHE_ENV = "FT_CORE_CACHE"
#: Written last into a folder whose content is complete: every other file's relative path and size.
COMPLETE_FILE = "ft_core_complete.json"
_TEMPORARY = ".tmp"


def cache_root() -> Path:
    """The ft-core cache root: ``$FT_CORE_CACHE`` or ``~/.cache/ft-core``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/ft-core").expanduser()


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, memoised per process by (path, size, mtime)."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, point: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file next to it (flushed to disk, then renamed over ``path``),
    so a reader sees the old content or the new, never half a file. One writer per file (the run's main process).
    ``point`` names the moment between the two for the crash tests (default ``write:<file name>``)."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    kill_point(point or f"write:{path.name}")
    os.replace(temporary, path)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, point: str | None = None) -> None:
    """:func:`write_atomic` of ``data`` as indented JSON."""
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n", point=point)


def mark_complete(folder: Path) -> None:
    """Write :data:`COMPLETE_FILE` into ``folder``: the size of every file in it, checked by :func:`incomplete`."""
    files = {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != COMPLETE_FILE
    }
    write_json_atomic(folder / COMPLETE_FILE, {"files": files})


def unmark(folder: Path) -> None:
    """Remove ``folder``'s completion marker (before changing or deleting the folder)."""
    (folder / COMPLETE_FILE).unlink(missing_ok=True)


def incomplete(folder: Path) -> str | None:
    """Why ``folder`` is not complete (no marker, a file it lists missing or of another size), or ``None``."""
    try:
        files = json.loads((folder / COMPLETE_FILE).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return f"no {COMPLETE_FILE}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{COMPLETE_FILE} is unreadable"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, not {size}"
    return None


def process_alive(pid: object) -> bool:
    """Whether a process with this id runs on this machine (``True`` when ``pid`` is not a number: unknown)."""
    if not isinstance(pid, int) or isinstance(pid, bool):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temporary_name(name: str) -> str:
    return f"{_TEMPORARY}~{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:8]}~{name}"


def remove_stale_temporaries(parent: Path) -> None:
    """Remove the temporary folders that processes of this machine, now gone (killed while writing), left in
    ``parent``."""
    host = socket.gethostname()
    for child in parent.iterdir() if parent.is_dir() else ():
        parts = child.name.split("~", 4)
        ours = len(parts) == 5 and parts[:2] == [_TEMPORARY, host] and parts[2].isdigit()
        if ours and not process_alive(int(parts[2])):
            shutil.rmtree(child, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(
    target: Path, *, replace: bool = False, mark: bool = False, point: str | None = None
) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success rename it to ``target`` atomically.

    If another process published ``target`` first, its folder is kept and ours is discarded — unless ``replace``:
    then the existing ``target`` is swapped out and deleted. ``mark`` writes the completion marker
    (:func:`mark_complete`) before the rename. On an exception the temporary folder is removed and ``target`` is
    left untouched. Temporary folders of killed processes of this machine are removed on the way in. ``point``
    names the moment before the rename for the crash tests.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    temporary = target.parent / _temporary_name(target.name)
    temporary.mkdir()
    try:
        yield temporary
        if mark:
            mark_complete(temporary)
        if point:
            kill_point(point)
        if replace and target.exists():
            old = target.parent / _temporary_name(target.name)
            os.rename(target, old)
            try:
                os.rename(temporary, target)
            except OSError:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
        try:
            os.rename(temporary, target)
        except OSError:
            if not target.is_dir():
                raise
            # Lost the race to another process: its folder is complete (it was renamed in whole).
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
