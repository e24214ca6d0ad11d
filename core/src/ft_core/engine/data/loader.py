"""Load named datasets into canonical samples: resolve specs, read rows, convert with the dataset format.

Bad rows are collected (up to :data:`MAX_REPORTED_ROWS`) and reported together in one
:class:`~ft_core.api.errors.DataError`, each naming its file, row number and column.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ft_core.api.components import DatasetFormat
from ft_core.api.config import DataSection
from ft_core.api.conversation import Conversation, Message
from ft_core.api.datasets import DatasetSpec
from ft_core.api.errors import ComponentNotFoundError, DataError, PluginError
from ft_core.engine.data.formats import NO_ANSWER
from ft_core.engine.data.mixing import mix
from ft_core.engine.data.readers import data_files, read_rows
from ft_core.engine.data.registry import resolve_datasets
from ft_core.engine.storage import file_sha256

MAX_REPORTED_ROWS = 20
PROGRESS_MIN_ROWS = 10_000

Sample = Conversation | str
_RawRow = tuple[Path, int, dict[str, Any]]


class FormatLookup(Protocol):
    """What :func:`load_samples` needs of the plugin manager (``ft_core.engine.plugins.Plugins`` fits)."""

    def get(self, kind: str, name: str) -> Any: ...


def format_for(spec: DatasetSpec, plugins: FormatLookup, produces: str) -> DatasetFormat:
    """The dataset format that converts ``spec`` into ``produces`` samples, or a DataError saying why not."""
    # LLaMA-Factory pretrains on an alpaca dataset's prompt column (c4_demo: columns {"prompt": "text"}).
    name = "text" if produces == "text" and spec.formatting == "alpaca" else spec.formatting
    try:
        dataset_format = plugins.get("dataset_format", name)
    except ComponentNotFoundError as exc:
        raise DataError(f"{spec.info_file}: dataset {spec.name!r}: formatting: {exc}") from None
    if dataset_format.produces != produces:
        raise DataError(
            f"dataset {spec.name!r} has formatting {spec.formatting!r}, which gives {dataset_format.produces} "
            f"samples, but this stage needs {produces} samples."
            + (
                " Use a 'text' dataset, or an 'alpaca' one (its prompt column is the text)."
                if produces == "text"
                else ""
            )
        )
    return dataset_format


def produced_by(data_kind: str) -> str:
    """What a dataset format must produce for a stage consuming ``data_kind``: ``text`` or ``conversation``."""
    return "text" if data_kind == "text" else "conversation"


def check_dataset_for(spec: DatasetSpec, plugins: FormatLookup, stage: str, data_kind: str) -> DatasetFormat:
    """The format of ``spec`` if its entry gives what stage ``stage`` (consuming ``data_kind``) trains on, else a
    DataError saying what to change in ``dataset_info.json``."""
    dataset_format = format_for(spec, plugins, produced_by(data_kind))
    where = f"{spec.info_file}: dataset {spec.name!r}"
    if spec.ranking and (spec.columns.chosen is None or spec.columns.rejected is None):
        raise DataError(
            f"{where}: 'ranking': true needs the chosen and rejected columns named in the entry's columns, e.g. "
            '"columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}.'
        )
    if data_kind == "preference" and not spec.ranking:
        raise DataError(
            f"{where}: stage {stage!r} trains on preference pairs, but the entry has no 'ranking': true. Add "
            '"ranking": true and the chosen / rejected columns (e.g. "columns": {"prompt": "instruction", '
            '"chosen": "chosen", "rejected": "rejected"}).'
        )
    if data_kind != "preference" and spec.ranking:
        raise DataError(
            f"{where}: is a preference dataset ('ranking': true), but stage {stage!r} trains on {data_kind} rows; "
            "use a preference stage such as dpo, or a dataset without ranking."
        )
    if data_kind not in ("kto", "text") and spec.columns.kto_tag is not None:
        raise DataError(
            f"{where}: has a kto_tag column ({spec.columns.kto_tag!r}): its rows are labelled good or bad answers, "
            f"and stage {stage!r} would train on the bad ones too. Use a KTO stage, or a dataset without kto_tag."
        )
    if data_kind == "kto" and spec.columns.kto_tag is None:
        raise DataError(
            f"{where}: stage {stage!r} needs a boolean label per row: name it in the entry's columns, e.g. "
            '"columns": {"kto_tag": "label"}.'
        )
    return dataset_format


def _rows(spec: DatasetSpec, max_samples: int | None, seed: int) -> list[_RawRow]:
    """The rows to convert: ``num_samples`` drawn at random as LLaMA-Factory does, then the first ``max_samples``."""
    rows: Iterator[_RawRow] = ((file, n, row) for file in data_files(spec.path) for n, row in read_rows(file))
    if spec.num_samples is None:
        selected = list(islice(rows, max_samples))
    else:
        everything = list(rows)
        rng = random.Random(seed)
        indexes = rng.sample(range(len(everything)), min(spec.num_samples, len(everything)))
        if everything and spec.num_samples > len(everything):  # oversample with replacement
            indexes += rng.choices(range(len(everything)), k=spec.num_samples - len(everything))
        selected = [everything[i] for i in indexes][:max_samples]
    if not selected:
        raise DataError(f"{spec.path}: dataset {spec.name!r} has no rows.")
    return selected


def _check_sample(sample: Any, dataset_format: DatasetFormat, produces: str, data_kind: str) -> None:
    """Enforce the format contract; a row-level problem raises ``ValueError``."""
    expected = Conversation if produces == "conversation" else str
    if not isinstance(sample, expected):
        raise PluginError(
            f"dataset format {type(dataset_format).__name__} returned {type(sample).__name__}; "
            f"expected {expected.__name__}."
        )
    if isinstance(sample, str):
        if not sample.strip():
            raise ValueError("empty text")
        return
    missing_answer = sample.extra.pop(NO_ANSWER, None)
    if missing_answer is not None:
        if data_kind != "prompt":
            raise missing_answer
        return  # prompt-only: the stage generates the answer
    last = sample.messages[-1] if sample.messages else None
    if last is None or last.role != "assistant" or not (last.content.strip() or last.tool_calls):
        raise ValueError("the conversation does not end with a non-empty assistant turn")
    if data_kind == "preference" and not isinstance(sample.extra.get("rejected"), Message):
        raise ValueError("the preference row has no rejected answer")


def _check_images(sample: Any, spec: DatasetSpec) -> None:
    """Every image of a conversation is a file PIL can read (named with the row's other problems)."""
    if not isinstance(sample, Conversation) or not sample.images:
        return
    from PIL import Image

    from ft_core.engine.data.formats import RowError

    for position, image in enumerate(sample.images, start=1):
        path = Path(image)
        try:
            found = path.is_file()
        except (OSError, ValueError):  # a name no file system takes (too long, a null byte)
            found = False
        if not found:
            raise RowError(spec.columns.images, f"image {position}: no such file: {str(path)[:200]}")
        try:
            with Image.open(path) as opened:
                opened.verify()
        except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
            raise RowError(
                spec.columns.images, f"image {position}: cannot read {path} as an image ({exc})"
            ) from None


def _problem(file: Path, number: int, exc: ValueError) -> str:
    column = getattr(exc, "column", None)
    return f"{file}: row {number}: " + (f"{column}: " if column else "") + f"{getattr(exc, 'message', exc)}."


def load_samples(
    names: Sequence[str],
    data: DataSection,
    plugins: FormatLookup,
    data_kind: str,
    seed: int,
    stage: str = "",
    mixed: bool = False,
) -> list[Sample]:
    """Load and convert the datasets ``names`` (concatenated in order; combined by ``data.mix_strategy`` with
    ``mixed``: the training datasets) into what a stage consuming ``data_kind`` trains on (conversations or texts).

    ``data.max_samples`` keeps the first rows of each dataset (after a spec's ``num_samples`` draw, which uses
    ``seed``). Every sample's ``source`` is ``"<file> row <n>"``.
    """
    per_dataset: list[list[Sample]] = []
    problems: list[str] = []
    for spec in resolve_datasets(names, data.dataset_dir, data.media_dir):
        samples: list[Sample] = []
        per_dataset.append(samples)
        dataset_format = check_dataset_for(spec, plugins, stage, data_kind)
        produces = produced_by(data_kind)
        rows = _rows(spec, data.max_samples, seed)
        progress = tqdm(
            rows, desc=f"Converting {spec.name}", unit="row", disable=len(rows) <= PROGRESS_MIN_ROWS
        )
        for file, number, row in progress:
            try:
                sample = dataset_format.convert(row, spec)
                _check_sample(sample, dataset_format, produces, data_kind)
                _check_images(sample, spec)
            except ValueError as exc:
                problems.append(_problem(file, number, exc))
                continue
            if isinstance(sample, Conversation):
                sample.source = f"{file} row {number}"
            samples.append(sample)
    if problems:
        shown = problems[:MAX_REPORTED_ROWS]
        lines = [f"{len(problems)} malformed row(s):", *(f"  - {p}" for p in shown)]
        if len(problems) > len(shown):
            lines.append(f"  ... and {len(problems) - len(shown)} more")
        lines.append("Fix the row or remove it." if len(problems) == 1 else "Fix these rows or remove them.")
        raise DataError("\n".join(lines))
    if not mixed:
        return [sample for samples in per_dataset for sample in samples]
    return mix(per_dataset, data.mix_strategy, data.interleave_probs, seed)


def split_validation(samples: Sequence[Any], val_size: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Split off a validation set: ``val_size`` is a fraction in (0, 1) or a row count (>= 1); 0 splits nothing.

    The evaluation rows are drawn at random with ``seed``; both parts keep their original order.
    """
    if val_size < 0 or (val_size >= 1 and val_size != int(val_size)):
        raise DataError(f"data.val_size must be a fraction in (0, 1) or a whole row count, got {val_size}.")
    count = math.ceil(val_size * len(samples)) if val_size < 1 else int(val_size)
    if count == 0:
        return list(samples), []
    if count >= len(samples):
        raise DataError(
            f"data.val_size={val_size} takes {count} of {len(samples)} rows for validation and leaves none for "
            "training. Use a smaller val_size or more data."
        )
    chosen = set(random.Random(seed).sample(range(len(samples)), count))
    train = [s for i, s in enumerate(samples) if i not in chosen]
    return train, [s for i, s in enumerate(samples) if i in chosen]


def dataset_fingerprint(specs: Sequence[DatasetSpec]) -> str:
    """SHA-256 over each spec (location-independent) and the bytes of its data files, for cache keys.

    The hash depends on content only, so moving ``dataset_dir`` keeps the cache valid, except for datasets with an
    ``images`` column: their prepared rows hold the images' absolute paths (read when batches are made), so the
    folder is part of their hash.
    """
    digest = hashlib.sha256()
    for spec in specs:
        digest.update(json.dumps(spec.to_json(), sort_keys=True).encode())
        if spec.columns.images:
            digest.update(b"images in " + str(spec.media_root.resolve()).encode())
        for file in data_files(spec.path):
            digest.update(file.name.encode() + b"\0" + file_sha256(file).encode())
    return digest.hexdigest()
