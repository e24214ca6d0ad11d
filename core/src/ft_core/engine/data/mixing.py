"""How several training datasets combine (``data.mix_strategy``), with ``datasets.interleave_datasets``' own
semantics: ``concat`` keeps them one after another; ``interleave_under`` takes a row of each in turn (or draws the
next dataset at ``data.interleave_probs``, seeded) until one runs out; ``interleave_over`` goes on until every one
has run out, starting the exhausted ones again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Strategy = Literal["concat", "interleave_under", "interleave_over"]


def stopping_strategy(strategy: Strategy) -> Literal["first_exhausted", "all_exhausted"]:
    """``interleave_datasets``' stopping strategy of an interleaving ``mix_strategy``."""
    return "first_exhausted" if strategy == "interleave_under" else "all_exhausted"


def interleave_order(
    sizes: Sequence[int], strategy: Strategy, probabilities: Sequence[float] | None, seed: int
) -> list[tuple[int, int]]:
    """``(dataset, row)`` pairs in the order ``datasets.interleave_datasets`` takes the rows of datasets of
    ``sizes`` rows (computed on index columns, so the samples themselves need not be Arrow data)."""
    import datasets

    progress = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        parts = [datasets.Dataset.from_dict({"d": [k] * n, "i": list(range(n))}) for k, n in enumerate(sizes)]
        mixed = datasets.interleave_datasets(
            parts,
            probabilities=list(probabilities) if probabilities is not None else None,
            seed=seed,
            stopping_strategy=stopping_strategy(strategy),
        )
    finally:
        if progress:
            datasets.enable_progress_bars()
    return list(zip(mixed["d"], mixed["i"], strict=True))


def mix(
    per_dataset: Sequence[Sequence[T]], strategy: Strategy, probabilities: Sequence[float] | None, seed: int
) -> list[T]:
    """The rows of ``per_dataset`` combined by ``strategy`` (one dataset, or ``concat``: concatenated in order)."""
    if strategy == "concat" or len(per_dataset) < 2:
        return [row for rows in per_dataset for row in rows]
    order = interleave_order([len(rows) for rows in per_dataset], strategy, probabilities, seed)
    return [per_dataset[d][i] for d, i in order]


def mix_streams(
    streams: list[Any], strategy: Strategy, probabilities: Sequence[float] | None, seed: int
) -> Any:
    """Streaming: ``datasets.IterableDataset`` parts combined by ``strategy``."""
    import datasets

    if len(streams) == 1:
        return streams[0]
    if strategy == "concat":
        return datasets.concatenate_datasets(streams)
    return datasets.interleave_datasets(
        streams,
        probabilities=list(probabilities) if probabilities is not None else None,
        seed=seed,
        stopping_strategy=stopping_strategy(strategy),
    )
