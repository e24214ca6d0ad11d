"""On-disk cache of preprocessed datasets, keyed by a hash of everything that decides their content."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.storage import atomic_folder, cache_root

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets

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

    Entries live in ``<cache_dir or $FT_CORE_CACHE/datasets (default ~/.cache/ft-core/datasets)>/<key>``; each is written to a temporary folder
    and renamed into place, so a crashed or concurrent run never leaves a half-written entry. ``overwrite``
    rebuilds even on a hit. The key parts are stored next to the data (``ft_core_key.json``) for inspection.
    """
    import datasets

    root = Path(cache_dir).expanduser() if cache_dir else cache_root() / "datasets"
    target = root / cache_key(key_parts)
    if target.is_dir() and not overwrite:
        return datasets.load_from_disk(str(target))
    if overwrite and target.is_dir():
        shutil.rmtree(target)
    with atomic_folder(target) as staging:
        datasets.Dataset.from_list(build()).save_to_disk(str(staging))
        (staging / KEY_FILE).write_text(json.dumps(key_parts, sort_keys=True, indent=2), encoding="utf-8")
    return datasets.load_from_disk(str(target))
