"""The dataset registry: ``dataset_info.json`` entries (LLaMA-Factory compatible) as :class:`DatasetSpec`.

An entry names a local file or folder (``file_name``, relative to the folder holding the json), its
``formatting`` (``alpaca``, ``sharegpt``, ``text`` or any registered dataset format), ``columns`` and, for
sharegpt, ``tags``. Entries are validated strictly: an unknown key, a wrong type or a hub-only entry is a
:class:`~ft_core.api.errors.DataError` naming the json file, the dataset and the key.

This module is import-light (standard library only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ft_core.api.datasets import Columns, DatasetSpec, Tags
from ft_core.api.errors import DataError, did_you_mean

DEMO_DATA_DIR = Path(__file__).resolve().parents[2] / "demo_data"
INFO_FILE = "dataset_info.json"

#: LLaMA-Factory keys that only matter for hub / cloud datasets, which ft-core does not download.
_REMOTE_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
#: LLaMA-Factory keys accepted and ignored for local files (they select hub subsets / folders).
_IGNORED_KEYS = ("subset", "folder")
#: LLaMA-Factory multimodal columns ft-core does not support (``images`` it does, for sharegpt).
_MULTIMODAL_COLUMNS = ("videos", "audios")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(where: str, entry: dict[str, Any], allowed: Sequence[str], hint: str = "") -> None:
    for key in entry:
        if key not in allowed:
            raise DataError(
                f"{where}: unknown key {key!r}.{did_you_mean(key, allowed)} Allowed keys: {', '.join(allowed)}.{hint}"
            )


def _strings(where: str, entry: dict[str, Any], nullable: bool) -> dict[str, Any]:
    for key, value in entry.items():
        if not (isinstance(value, str) or (nullable and value is None)):
            expected = "a string or null" if nullable else "a string"
            raise DataError(f"{where}: key {key!r} must be {expected}, got {_type_name(value)} {value!r}.")
    return entry


def _mapping(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataError(f"{where}: key {key!r} must be an object, got {_type_name(value)}.")
    return value


def _parse_entry(name: str, entry: Any, info_file: Path, dataset_dir: Path) -> DatasetSpec:
    where = f"{info_file}: dataset {name!r}"
    entry = _mapping(f"{info_file}", name, entry)
    top_keys = ("file_name", "formatting", "ranking", "columns", "tags", "num_samples", "split")
    _check_keys(where, entry, (*top_keys, *_REMOTE_KEYS, *_IGNORED_KEYS))
    if "file_name" not in entry:
        remote = [k for k in _REMOTE_KEYS if k in entry]
        if remote:
            raise DataError(
                f"{where}: {remote[0]!r} datasets are not downloaded by ft-core. Download the data and set "
                f"'file_name' to the local file or folder (relative to {dataset_dir})."
            )
        raise DataError(
            f"{where}: missing key 'file_name' (the data file or folder, relative to {dataset_dir})."
        )
    kwargs: dict[str, Any] = {}
    for key, expected, check in (
        ("file_name", "a non-empty string", lambda v: isinstance(v, str) and v != ""),
        ("formatting", "a non-empty string", lambda v: isinstance(v, str) and v != ""),
        ("split", "a non-empty string", lambda v: isinstance(v, str) and v != ""),
        ("ranking", "true or false", lambda v: isinstance(v, bool)),
        ("num_samples", "a positive integer or null", lambda v: v is None or (type(v) is int and v > 0)),
    ):
        if key in entry:
            if not check(entry[key]):
                value = entry[key]
                raise DataError(
                    f"{where}: key {key!r} must be {expected}, got {_type_name(value)} {value!r}."
                )
            kwargs[key] = entry[key]
    if "columns" in entry:
        columns = _mapping(where, "columns", entry["columns"])
        names = [f.name for f in fields(Columns)]
        for key in _MULTIMODAL_COLUMNS:
            if key in columns:
                raise DataError(
                    f"{where}: columns.{key}: video and audio datasets are not supported by ft-core (images are: "
                    "name the column of image paths in columns.images)."
                )
        _check_keys(f"{where}: columns", columns, names)
        kwargs["columns"] = Columns(**_strings(f"{where}: columns", columns, nullable=True))
    if "tags" in entry:
        tags = _mapping(where, "tags", entry["tags"])
        names = [f.name for f in fields(Tags)]
        _check_keys(f"{where}: tags", tags, names)
        kwargs["tags"] = Tags(**_strings(f"{where}: tags", tags, nullable=False))
    return DatasetSpec(name=name, dataset_dir=str(dataset_dir), info_file=str(info_file), **kwargs)


def _read_info(dataset_dir: Path) -> dict[str, DatasetSpec]:
    info_file = dataset_dir / INFO_FILE
    if not info_file.is_file():
        return {}
    try:
        raw = json.loads(info_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{info_file}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    if not isinstance(raw, dict):
        raise DataError(
            f"{info_file}: expected an object mapping dataset names to entries, got {_type_name(raw)}."
        )
    specs: dict[str, DatasetSpec] = {}
    problems: list[str] = []
    for name, entry in raw.items():  # every bad entry reported at once
        try:
            specs[name] = _parse_entry(name, entry, info_file, dataset_dir)
        except DataError as exc:
            problems.append(str(exc))
    if problems:
        raise DataError(_joined(problems))
    return specs


def _joined(problems: list[str]) -> str:
    """One problem as is; several as a list."""
    if len(problems) == 1:
        return problems[0]
    return "\n".join([f"{len(problems)} problems:", *(f"  - {p}" for p in problems)])


def load_dataset_info(dataset_dir: str | Path) -> dict[str, DatasetSpec]:
    """The datasets of ``<dataset_dir>/dataset_info.json`` plus the built-in demo sets (a user entry wins).

    A missing folder or json file gives just the demo sets.
    """
    return {**_read_info(DEMO_DATA_DIR), **_read_info(Path(dataset_dir))}


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a name no file system takes (a null byte, too long) does not."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def resolve_datasets(
    names: Sequence[str], dataset_dir: str | Path, media_dir: str | None = None
) -> list[DatasetSpec]:
    """Look up ``names`` in the registry and check that their files exist; ``media_dir`` (``data.media_dir``) is
    where their rows' image paths are resolved."""
    registry = load_dataset_info(dataset_dir)
    specs = []
    problems: list[str] = []
    folder = Path(dataset_dir)
    for name in names:
        spec = registry.get(name)
        if spec is None:
            hint = (
                f" Note: data.dataset_dir {str(dataset_dir)!r} does not exist (relative paths start from {Path.cwd()})."
                if not folder.is_dir()
                else ""
                if (folder / INFO_FILE).is_file()
                else f" Note: {folder} holds no {INFO_FILE}."
            )
            problems.append(
                f"unknown dataset {name!r}.{did_you_mean(name, registry)} Available in "
                f"{folder / INFO_FILE} and the built-in demo sets: {', '.join(sorted(registry))}.{hint}"
            )
        elif not _exists(spec.path):
            problems.append(
                f"{spec.info_file}: dataset {name!r}: file_name {spec.file_name!r} not found: {spec.path}."
            )
        else:
            specs.append(replace(spec, media_dir=media_dir) if media_dir else spec)
    if problems:
        raise DataError(_joined(problems))
    return specs
