"""On-disk cache helpers: the cache root, content hashes and atomically published folders."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "FT_CORE_CACHE"


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


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success rename it to ``target`` atomically.

    If another process published ``target`` first, its folder is kept and ours is discarded; on an
    exception the temporary folder is removed and ``target`` is left untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
        try:
            os.rename(temporary, target)
        except OSError:
            if not target.is_dir():
                raise
            # Lost the race to another process: its folder is complete (it was renamed in whole).
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
