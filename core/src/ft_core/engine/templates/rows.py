"""Supervised rows kept as columns: what the encoder's batch encoding returns.

A :class:`SupervisedRows` is a sequence of ``{"input_ids", "labels", "attention_mask"}`` rows like any stage's, but
it holds only the token ids and labels the encoder made (lists of Python ints; the attention mask is all ones), so
the engine stores it as Arrow columns without looking at each value's type.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any, overload

Row = dict[str, list[int]]


class SupervisedRows(Sequence[Row]):
    """Rows of token ids and labels (``IGNORE_INDEX`` where not trained), each with an all-ones attention mask."""

    def __init__(self, rows: Iterable[Row]) -> None:
        """Keep the ids and labels of ``rows`` (made by the encoder: ints, every attention mask all ones)."""
        self.input_ids: list[list[int]] = []
        self.labels: list[list[int]] = []
        for row in rows:
            self.input_ids.append(row["input_ids"])
            self.labels.append(row["labels"])

    def __len__(self) -> int:
        return len(self.input_ids)

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        ids = self.input_ids[index]
        return {"input_ids": ids, "labels": self.labels[index], "attention_mask": [1] * len(ids)}

    def table(self) -> Any:
        """The rows as a ``pyarrow.Table`` of int32 lists (the columns ``_table`` makes of any rows)."""
        import numpy as np
        import pyarrow as pa

        lengths = np.fromiter(map(len, self.input_ids), dtype=np.int64, count=len(self))
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        total = int(lengths.sum())

        def column(values: list[list[int]]) -> Any:
            flat = np.fromiter(itertools.chain.from_iterable(values), dtype=np.int32, count=total)
            return pa.ListArray.from_arrays(offsets, pa.array(flat))

        ones = pa.ListArray.from_arrays(offsets, pa.array(np.ones(total, dtype=np.int32)))
        return pa.table(
            {"input_ids": column(self.input_ids), "labels": column(self.labels), "attention_mask": ones}
        )
