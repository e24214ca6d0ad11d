"""On-disk cache of preprocessed datasets, keyed by a hash of everything that decides their content."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets

DEFAULT_CACHE_DIR = Path("~/.cache/ft-core/datasets")
KEY_FILE = "ft_core_key.json"


def cache_key(key_parts: dict[str, Any]) -> str:
    """SHA-256 of ``key_parts`` as canonical JSON."""
    return hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()


def cached(
    key_parts: dict[str, Any],
    build: Callable[[], list[dict[str, Any]]],
    cache_dir: str | None,
    overwrite: bool,
) -> datasets.Dataset:
    """Return the dataset cached under ``key_parts``, building and storing it with ``build()`` on a miss.

    Entries live in ``<cache_dir or ~/.cache/ft-core/datasets>/<key>``; each is written to a temporary folder
    and renamed into place, so a crashed or concurrent run never leaves a half-written entry. ``overwrite``
    rebuilds even on a hit. The key parts are stored next to the data (``ft_core_key.json``) for inspection.
    """
    import datasets

    root = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR.expanduser()
    target = root / cache_key(key_parts)
    if target.is_dir() and not overwrite:
        return datasets.load_from_disk(str(target))
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=root))
    try:
        datasets.Dataset.from_list(build()).save_to_disk(str(staging))
        (staging / KEY_FILE).write_text(json.dumps(key_parts, sort_keys=True, indent=2), encoding="utf-8")
        if overwrite and target.is_dir():
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process stored the same entry first; its content is equivalent.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return datasets.load_from_disk(str(target))
