"""Prepare a run's data: read, convert, split and preprocess with the stage in parallel worker processes, cached on
disk by content hash (``ft-core prepare`` runs exactly this, without loading the model)."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import inspect
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_core.api.config import DataSection, RunConfig
from ft_core.api.context import Encoder, ResolvedTemplate
from ft_core.api.errors import DataError
from ft_core.engine.data.cache import cached, stored_key
from ft_core.engine.data.loader import dataset_fingerprint, load_samples, split_validation
from ft_core.engine.data.registry import resolve_datasets
from ft_core.engine.data.streaming import streamed_training_data
from ft_core.engine.plugins import Plugins, core_version
from ft_core.engine.templates.rows import SupervisedRows

#: Below this many samples per worker, preprocessing stays in this process (starting workers costs more).
MIN_SAMPLES_PER_WORKER = 256
#: Samples a stage whose rows are per sample preprocesses per call (their rows are stored before the next batch).
BATCH_SAMPLES = 256


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class PreparedSplit:
    """One preprocessed split and how it was made."""

    dataset: Any
    samples: int
    rows: int
    tokens: int
    seconds: float
    cached: bool
    #: A stream (``data.streaming``): ``dataset`` is a ``datasets.IterableDataset``; the counts are unknown (0).
    streamed: bool = False


@dataclass
class PreparedData:
    """A run's preprocessed training (and evaluation) data; ``evals`` holds one split per evaluation dataset
    (``data.eval_on_each_dataset``) instead of ``eval``."""

    train: PreparedSplit
    eval: PreparedSplit | None = None
    notes: list[str] = field(default_factory=list)
    evals: dict[str, PreparedSplit] = field(default_factory=dict)

    def eval_dataset(self) -> Any:
        """What the trainer evaluates on: one dataset, a ``{name: dataset}`` mapping (metrics
        ``eval_<name>_...``), or ``None``."""
        if self.evals:
            return {name: split.dataset for name, split in self.evals.items()}
        return self.eval.dataset if self.eval is not None else None

    @property
    def eval_rows(self) -> int | None:
        """Rows of evaluation data (all sets together), ``None`` without any."""
        splits = list(self.evals.values()) or ([self.eval] if self.eval is not None else [])
        return sum(split.rows for split in splits) if splits else None

    @property
    def eval_tokens(self) -> int | None:
        """Tokens of evaluation data (all sets together), ``None`` without any."""
        splits = list(self.evals.values()) or ([self.eval] if self.eval is not None else [])
        return sum(split.tokens for split in splits) if splits else None


# ------------------------------------------------------------------------------------------ parallel workers
_JOB: tuple[Any, Any, Encoder, Sequence[Any]] | None = None


def _column(values: list[Any]) -> Any:
    """An Arrow column; lists of token ids (or labels, masks) are stored as int32 lists."""
    import pyarrow as pa

    if values and isinstance(values[0], list):
        try:
            return pa.array(values, type=pa.list_(pa.int32()))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # not integers: let Arrow infer the type
            pass
    return pa.array(values)


def _table(rows: Sequence[dict[str, Any]]) -> Any:
    import pyarrow as pa

    if not rows:
        return pa.table({})
    if isinstance(rows, SupervisedRows):  # the encoder's ids and labels: columns as they are
        return rows.table()
    return pa.table({key: _column([row[key] for row in rows]) for key in rows[0]})


def _concat(tables: list[Any]) -> Any:
    """One table of ``tables`` in order (those without rows, hence without columns, left out)."""
    import pyarrow as pa

    tables = [t for t in tables if t.num_columns]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def _chunk_table(stage: Any, options: Any, encoder: Encoder, samples: Sequence[Any]) -> Any:
    """The stage's rows of ``samples`` as one Arrow table; for a stage whose rows are per sample
    (``rows_per_sample``), made :data:`BATCH_SAMPLES` samples at a time, each batch's rows stored at once."""
    if not stage.rows_per_sample:
        return _table(stage.preprocess(list(samples), encoder, options))
    return _concat(
        [
            _table(stage.preprocess(list(samples[lo : lo + BATCH_SAMPLES]), encoder, options))
            for lo in range(0, len(samples), BATCH_SAMPLES)
        ]
    )


def _work_range(bounds: tuple[int, int]) -> Any:
    assert _JOB is not None
    stage, options, encoder, samples = _JOB
    return _chunk_table(stage, options, encoder, samples[bounds[0] : bounds[1]])


def _work_chunk(job: tuple[Any, Any, Encoder, list[Any]]) -> Any:
    return _chunk_table(*job)


def effective_workers(samples: int, workers: int) -> int:
    """Workers worth starting for ``samples`` samples (at most ``workers``)."""
    return max(1, min(workers, samples // MIN_SAMPLES_PER_WORKER))


@contextmanager
def _frozen_gc() -> Iterator[None]:
    """Keep the objects that exist so far (modules, samples) out of garbage collection meanwhile: it otherwise walks
    all of them again and again while rows are made. They are unfrozen at the end, unless something had frozen
    objects before (then that keeps them frozen until it unfreezes)."""
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


@contextmanager
def _one_core_each() -> Iterator[None]:
    """Each preprocessing process tokenizes on one core (the processes are the parallelism): the Rust tokenizers'
    own threads are off meanwhile (``TOKENIZERS_PARALLELISM``, inherited by the workers), then as they were."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def preprocess(stage: Any, options: Any, encoder: Encoder, samples: Sequence[Any], workers: int) -> Any:
    """Run ``stage.preprocess`` over ``samples`` in up to ``workers`` processes; return one Arrow table.

    Workers get contiguous chunks (several per worker, for balance) and the row order is kept. With ``fork``
    available, workers read the samples from the parent's memory; otherwise chunks are pickled to them. Each
    process tokenizes on one core.
    """
    workers = effective_workers(len(samples), workers)
    with _one_core_each(), _frozen_gc():
        if workers == 1:
            return _chunk_table(stage, options, encoder, samples)
        size = math.ceil(len(samples) / (workers * 4))
        bounds = [(lo, min(lo + size, len(samples))) for lo in range(0, len(samples), size)]
        if "fork" in multiprocessing.get_all_start_methods():
            global _JOB
            _JOB = (stage, options, encoder, samples)
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    tables = pool.map(_work_range, bounds)
            finally:
                _JOB = None
        else:  # pragma: no cover - platforms without fork
            jobs = [(stage, options, encoder, list(samples[lo:hi])) for lo, hi in bounds]
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                tables = pool.map(_work_chunk, jobs)
    return _concat(tables)


def _token_count(table: Any) -> int:
    import pyarrow.compute as pc

    return sum(
        int(pc.sum(pc.list_value_length(table.column(name))).as_py() or 0)
        for name in table.column_names
        if name.endswith("ids")
    )


def code_digest(*classes: type) -> str:
    """A hash of the Python files of the packages defining ``classes`` (the stage's, the encoder's): editing
    preprocessing code — an editable install keeps its version — invalidates the cache like a new version does."""
    digest = hashlib.sha256()
    for cls in classes:
        try:
            path = inspect.getsourcefile(cls)
        except TypeError:  # defined without a source file
            path = None
        files = sorted(Path(path).parent.glob("*.py")) if path else []
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
        if not files:
            digest.update(cls.__qualname__.encode())
    return digest.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """A hash of the tokenizer's vocabulary and rules (part of the cache key)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_settings(encoder: Encoder) -> str:
    """What else decides the encoder's rows (template keyword arguments, turn-by-turn encoding, stop handling,
    vision settings): its dataclass fields but the tokenizer, as text."""
    if not dataclasses.is_dataclass(encoder):
        return type(encoder).__qualname__
    fields = {f.name: getattr(encoder, f.name) for f in dataclasses.fields(encoder) if f.name != "tokenizer"}
    return repr(sorted(fields.items()))


def prepare_data(
    config: RunConfig,
    plugins: Plugins,
    tokenizer: Any,
    template: ResolvedTemplate | None,
    encoder: Encoder,
    say: Callable[[str], None],
) -> PreparedData:
    """Read, convert, split and preprocess the run's datasets, or take them from the cache.

    The cache key holds everything that decides the rows: ft-core's version, the stage and its options, the
    tokenizer, the template and system prompt, the data options and the content of the data files.
    """
    data, stage, seed = config.data, config.stage, config.training.seed
    kind = stage.component.data_kind
    workers = data.preprocessing_workers or available_cores()
    key_common = {
        "ft_core": core_version(),
        "stage": [stage.name, stage.distribution, stage.version, repr(stage.options)],
        "code": code_digest(type(stage.component), type(encoder)),
        "tokenizer": tokenizer_digest(tokenizer),
        "template": template.jinja if template is not None else None,
        "system": config.template.system,
        "options": [data.cutoff_len, data.train_on_prompt, data.mask_history, data.max_samples],
        "encoder": encoder_settings(encoder),
    }
    loaded: dict[tuple[tuple[str, ...], bool], list[Any]] = {}
    notes: list[str] = []

    def samples_of(names: list[str], split: str | None, mixed: bool) -> list[Any]:
        if (tuple(names), mixed) not in loaded:  # read each file once, even when both splits are rebuilt
            loaded[tuple(names), mixed] = load_samples(
                names, data, plugins, kind, seed, stage=stage.name, mixed=mixed
            )
        samples = loaded[tuple(names), mixed]
        if split is None:
            return samples
        train, evaluation = split_validation(samples, data.val_size, seed)
        return train if split == "train" else evaluation

    stored = tokenized_folder(data)

    def prepared(
        names: list[str], role: str, split: str | None = None, folder: str = "train"
    ) -> PreparedSplit:
        counts: dict[str, int] = {}
        started = time.perf_counter()
        mixed = role == "training" or split == "eval"  # the training datasets (and val_size taken from them)

        def build() -> Any:
            with _frozen_gc():
                samples = samples_of(names, split, mixed)
                used = effective_workers(len(samples), workers)
                say(f"preprocessing {len(samples)} {role} samples ({used} process{'es' if used > 1 else ''})")
                table = preprocess(stage.component, stage.options, encoder, samples, workers)
            counts["samples"] = len(samples)
            if table.num_rows == 0:
                raise DataError(
                    f"{role} data: none of the {len(samples)} samples gave a row: each kept no trained token after "
                    f"cutting to data.cutoff_len={data.cutoff_len}. Raise data.cutoff_len (or check the data)."
                )
            if stage.component.data_kind != "text" and table.num_rows < len(samples):
                notes.append(
                    f"{role}: dropped {len(samples) - table.num_rows} of {len(samples)} samples that kept no "
                    f"trained token after cutting to data.cutoff_len={data.cutoff_len}"
                )
            return table

        specs = resolve_datasets(names, data.dataset_dir, data.media_dir)
        key: dict[str, Any] = {
            **key_common,
            "data": dataset_fingerprint(specs),
            "split": [split, data.val_size, seed],
        }
        if mixed and len(names) > 1:
            key["mix"] = [data.mix_strategy, data.interleave_probs]
        target = None
        if data.tokenized_path is not None:
            target = Path(data.tokenized_path).expanduser() / folder
            if stored is not None:
                notes.extend(reuse_notes(target, key, role))
        dataset = cached(key, build, data.cache_dir, data.overwrite_cache, folder=target)
        return PreparedSplit(
            dataset=dataset,
            samples=counts.get("samples", dataset.num_rows),
            rows=dataset.num_rows,
            tokens=_token_count(dataset.data.table),
            seconds=time.perf_counter() - started,
            cached="samples" not in counts,
        )

    def training() -> PreparedSplit:
        if not data.streaming:
            return prepared(data.dataset, "training")
        notes.append(
            f"training: streamed (a shuffle buffer of {data.buffer_size} rows); rows are read and preprocessed as "
            "the trainer takes them"
        )
        started = time.perf_counter()
        stream = streamed_training_data(config, plugins, encoder)
        return PreparedSplit(stream, 0, 0, 0, time.perf_counter() - started, cached=False, streamed=True)

    if data.eval_dataset and data.eval_on_each_dataset:
        result = PreparedData(training())
        result.evals = {
            name: prepared([name], f"evaluation ({name})", folder=f"eval_{name}")
            for name in data.eval_dataset
        }
    elif data.eval_dataset:
        result = PreparedData(training(), prepared(data.eval_dataset, "evaluation", folder="eval"))
    elif data.val_size > 0:
        result = PreparedData(
            prepared(data.dataset, "training", "train"),
            prepared(data.dataset, "evaluation", "eval", folder="eval"),
        )
    else:
        result = PreparedData(training())
    result.notes = notes
    return result


def tokenized_folder(data: DataSection) -> Path | None:
    """``data.tokenized_path`` when it holds prepared data to reuse (it exists and ``overwrite_cache`` is off)."""
    if data.tokenized_path is None or data.overwrite_cache:
        return None
    folder = Path(data.tokenized_path).expanduser()
    return folder if folder.exists() else None


def reuse_notes(target: Path, key: dict[str, Any], role: str) -> list[str]:
    """Check that ``data.tokenized_path`` holds the split ``target``; notes naming what differs from how it was
    prepared (LLaMA-Factory semantics: prepared data found there is used as it is)."""
    if not target.is_dir():
        raise DataError(
            f"data.tokenized_path: {target.parent} holds no prepared {role} data ({target.name}/): it was prepared "
            "for a run with other datasets or evaluation settings. Delete the folder (or set data.overwrite_cache: "
            "true) to prepare it again, or choose another data.tokenized_path."
        )
    before = stored_key(target) or {}
    changed = sorted(k for k in set(before) | set(key) if before.get(k) != key.get(k))
    note = f"{role}: reusing the prepared data in {target} (data.tokenized_path)"
    if changed:
        note += (
            f"; it was prepared with different settings (changed: {', '.join(changed)}). Delete the folder or "
            "set data.overwrite_cache: true to prepare it again"
        )
    return [note]
