"""Read the rows of local dataset files: JSON, JSON lines, CSV, Parquet, plain text, or a folder of them.

Every reader yields ``(row_number, row)`` with ``row`` a dict. The row number is 1-based: the position of the
row in a JSON array, CSV or Parquet file, and the line number in JSON-lines and text files (so an editor
jumps straight to it). Malformed content is a :class:`~ft_core.api.errors.DataError` naming the file, the row or
line and what is wrong.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ft_core.api.errors import DataError

Row = tuple[int, dict[str, Any]]


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _checked(path: Path, what: str, number: int, row: Any) -> Row:
    if not isinstance(row, dict):
        raise DataError(f"{path}: {what} {number} is {_kind(row)}, expected an object.")
    return number, row


def _unreadable(exc: Exception) -> str:
    """What made valid-looking JSON unreadable."""
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _read_json_lines(path: Path, text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: line {number}, column {exc.colno}: invalid JSON: {exc.msg}. "
                "Each line must hold one JSON object (or the whole file one JSON array)."
            ) from None
        except (ValueError, RecursionError) as exc:  # an integer of too many digits, nesting too deep to read
            raise DataError(f"{path}: line {number}: unreadable JSON: {_unreadable(exc)}.") from None
        yield _checked(path, "line", number, row)


def _read_json(path: Path) -> Iterator[Row]:
    text = path.read_text(encoding="utf-8-sig")
    if not text.lstrip().startswith("["):
        yield from _read_json_lines(path, text)
        return
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of too many digits, nesting too deep to read
        raise DataError(f"{path}: unreadable JSON: {_unreadable(exc)}.") from None
    for number, row in enumerate(rows, start=1):
        yield _checked(path, "row", number, row)


def _read_jsonl(path: Path) -> Iterator[Row]:
    yield from _read_json_lines(path, path.read_text(encoding="utf-8-sig"))


def _read_csv(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for number, row in enumerate(reader, start=1):
                if None in row:
                    raise DataError(
                        f"{path}: row {number} (line {reader.line_num}) has more fields than the header "
                        f"({len(reader.fieldnames or [])} columns)."
                    )
                yield number, row
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num}: invalid CSV: {exc}.") from None


def _read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-parquet content
        raise DataError(f"{path}: not a readable Parquet file: {exc}.") from None
    number = 0
    for batch in parquet.iter_batches():
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _read_text(path: Path) -> Iterator[Row]:
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line.strip():
            yield number, {"text": line}


READERS: dict[str, Callable[[Path], Iterator[Row]]] = {
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".txt": _read_text,
}


def data_files(path: str | Path) -> list[Path]:
    """The files behind ``path``: the file itself, or a folder's supported files (sorted, hidden ones skipped)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in READERS
    )
    if not files:
        raise DataError(f"{path}: the folder holds no data files (supported: {', '.join(READERS)}).")
    return files


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row_number, row)`` for every row of a data file, or of every data file in a folder."""
    for file in data_files(path):
        if not file.is_file():
            raise DataError(f"{file}: no such file.")
        reader = READERS.get(file.suffix.lower())
        if reader is None:
            raise DataError(
                f"{file}: unsupported file type {file.suffix!r}; supported: {', '.join(READERS)}."
            )
        try:
            yield from reader(file)
        except UnicodeDecodeError as exc:
            raise DataError(f"{file}: not UTF-8 text (byte {exc.start}): {exc.reason}.") from None
