"""Streamed training data (``data.streaming``): rows are read, converted and preprocessed by the stage as the
trainer asks for them (a ``datasets.IterableDataset``), never all held in memory; a shuffle buffer of
``data.buffer_size`` rows (seeded) mixes them, and ``data.mix_strategy`` combines the datasets' streams."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ft_core.api.components import DatasetFormat
from ft_core.api.config import RunConfig
from ft_core.api.context import Encoder
from ft_core.api.conversation import Conversation
from ft_core.api.datasets import DatasetSpec
from ft_core.api.errors import DataError
from ft_core.engine.data.loader import _check_images, _check_sample, _problem, check_dataset_for, produced_by
from ft_core.engine.data.mixing import mix_streams
from ft_core.engine.data.readers import data_files, read_rows
from ft_core.engine.data.registry import resolve_datasets

#: Samples converted before the stage preprocesses them together.
CHUNK = 64


@dataclass(frozen=True)
class StreamJob:
    """What reading one dataset as a stream needs (picklable: dataloader workers get a copy)."""

    spec: DatasetSpec
    dataset_format: DatasetFormat
    stage: Any
    options: Any
    encoder: Encoder
    data_kind: str
    max_samples: int | None


def _samples(job: StreamJob) -> Iterator[Any]:
    """The dataset's converted samples, in file order; a bad row stops the stream naming its file and row."""
    produces = produced_by(job.data_kind)
    rows = ((file, n, row) for file in data_files(job.spec.path) for n, row in read_rows(file))
    for file, number, row in islice(rows, job.max_samples):
        try:
            sample = job.dataset_format.convert(row, job.spec)
            _check_sample(sample, job.dataset_format, produces, job.data_kind)
            _check_images(sample, job.spec)
        except ValueError as exc:
            raise DataError(
                f"malformed row: {_problem(file, number, exc)} Fix the row or remove it."
            ) from None
        if isinstance(sample, Conversation):
            sample.source = f"{file} row {number}"
        yield sample


def stream_rows(job: StreamJob) -> Iterator[dict[str, Any]]:
    """The stage's preprocessed rows of the dataset, chunk by chunk."""
    samples = _samples(job)
    while chunk := list(islice(samples, CHUNK)):
        yield from job.stage.preprocess(chunk, job.encoder, job.options)


def streamed_training_data(config: RunConfig, plugins: Any, encoder: Encoder) -> Any:
    """The run's training data as one shuffled ``datasets.IterableDataset``."""
    import datasets

    data, stage, seed = config.data, config.stage, config.training.seed
    kind = stage.component.data_kind
    streams = []
    for spec in resolve_datasets(data.dataset, data.dataset_dir, data.media_dir):
        if spec.num_samples is not None:
            raise DataError(
                f"{spec.info_file}: dataset {spec.name!r}: num_samples draws rows at random from the whole file, "
                "which a stream cannot; remove num_samples (data.max_samples takes the first rows) or stream off"
            )
        job = StreamJob(
            spec,
            check_dataset_for(spec, plugins, stage.name, kind),
            stage.component,
            stage.options,
            encoder,
            kind,
            data.max_samples,
        )
        streams.append(datasets.IterableDataset.from_generator(stream_rows, gen_kwargs={"job": job}))
    mixed = mix_streams(streams, data.mix_strategy, data.interleave_probs, seed)
    return mixed.shuffle(seed=seed, buffer_size=data.buffer_size)
