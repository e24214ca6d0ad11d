"""On-disk cache of preprocessed datasets, keyed by a hash of everything that decides their content."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.engine.killpoints import kill_point
from ft_core.engine.storage import COMPLETE_FILE, atomic_folder, cache_root, incomplete

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets

KEY_FILE = "ft_core_key.json"

logger = logging.getLogger(__name__)


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
    a temporary folder, marked complete (``ft_core_complete.json``: every file's size) and renamed into place, so a
    crashed or concurrent run never leaves a half-written entry, and an entry that is not complete (files missing
    or cut short) is prepared again, never read. ``overwrite`` rebuilds even on a hit. The key parts are stored
    next to the data (``ft_core_key.json``) for inspection.
    """
    import datasets
    from datasets.table import InMemoryTable

    root = Path(cache_dir).expanduser() if cache_dir else cache_root() / "datasets"
    target = Path(folder).expanduser() if folder is not None else root / cache_key(key_parts)
    if target.is_dir() and not overwrite:
        loaded = _load_complete(target, unmarked_ok=folder is not None)
        if loaded is not None:
            return loaded
    with atomic_folder(target, replace=True, mark=True, point="data.written") as staging:
        # the key is the fingerprint: datasets would otherwise hash the whole table to make one
        dataset = datasets.Dataset(InMemoryTable(build()), fingerprint=cache_key(key_parts))
        kill_point("data.tokenized")
        progress = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            dataset.save_to_disk(str(staging))
        finally:
            if progress:
                datasets.enable_progress_bars()
        (staging / KEY_FILE).write_text(json.dumps(key_parts, sort_keys=True, indent=2), encoding="utf-8")
    return datasets.load_from_disk(str(target))


def _load_complete(target: Path, unmarked_ok: bool) -> datasets.Dataset | None:
    """The dataset in ``target``, or ``None`` (said in a log line) when it is incomplete or cannot be read.
    ``unmarked_ok``: a folder without a completion marker is read (``data.tokenized_path`` written by an earlier
    version)."""
    import datasets

    reason = incomplete(target)
    if reason is None or (unmarked_ok and not (target / COMPLETE_FILE).exists()):
        try:
            return datasets.load_from_disk(str(target))
        except (OSError, ValueError) as exc:  # also pyarrow's ArrowInvalid and json's JSONDecodeError
            reason = f"unreadable: {exc}"
    logger.warning(
        f"prepared data in {target} is incomplete ({reason}; written by a killed run?): preparing it again"
    )
    return None
