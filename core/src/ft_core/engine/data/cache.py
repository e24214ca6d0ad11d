"""On-disk cache of preprocessed datasets, keyed by a hash of everything that decides their content."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.engine.storage import atomic_folder, cache_root

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets

KEY_FILE = "ft_core_key.json"


def cache_key(key_parts: dict[str, Any]) -> str:
    """SHA-256 of ``key_parts`` as canonical JSON."""
    return hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()


def stored_key(folder: str | Path) -> dict[str, Any] | None:
    """The key parts stored with a prepared dataset folder (``None`` when it has none)."""
    path = Path(folder) / KEY_FILE
    if not path.is_file():
        return None
    stored: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return stored


def cached(
    key_parts: dict[str, Any],
    build: Callable[[], Any],
    cache_dir: str | None,
    overwrite: bool,
    folder: str | Path | None = None,
) -> datasets.Dataset:
    """Return the dataset cached under ``key_parts``, building it with ``build()`` (an Arrow table) on a miss.

    Entries live in ``<cache_dir or $FT_CORE_CACHE/datasets (default ~/.cache/ft-core/datasets)>/<key>``, or in
    ``folder`` when given (``data.tokenized_path``: an existing folder is used whatever its key); each is written to
    a temporary folder and renamed into place, so a crashed or concurrent run never leaves a half-written entry.
    ``overwrite`` rebuilds even on a hit. The key parts are stored next to the data (``ft_core_key.json``) for
    inspection.
    """
    import datasets
    from datasets.table import InMemoryTable

    root = Path(cache_dir).expanduser() if cache_dir else cache_root() / "datasets"
    target = Path(folder).expanduser() if folder is not None else root / cache_key(key_parts)
    if target.is_dir() and not overwrite:
        return datasets.load_from_disk(str(target))
    if overwrite and target.is_dir():
        shutil.rmtree(target)
    with atomic_folder(target) as staging:
        dataset = datasets.Dataset(InMemoryTable(build()))
        progress = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            dataset.save_to_disk(str(staging))
        finally:
            if progress:
                datasets.enable_progress_bars()
        (staging / KEY_FILE).write_text(json.dumps(key_parts, sort_keys=True, indent=2), encoding="utf-8")
    return datasets.load_from_disk(str(target))
