"""Prepare a run's data: read, convert, split and preprocess with the stage in parallel worker processes, cached on
disk by content hash (``ft-core prepare`` runs exactly this, without loading the model)."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.context import Encoder, ResolvedTemplate
from ft_core.api.errors import DataError
from ft_core.engine.data.cache import cached
from ft_core.engine.data.loader import dataset_fingerprint, load_samples, split_validation
from ft_core.engine.data.registry import resolve_datasets
from ft_core.engine.plugins import Plugins, core_version

#: Below this many samples per worker, preprocessing stays in this process (starting workers costs more).
MIN_SAMPLES_PER_WORKER = 256


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


@dataclass
class PreparedData:
    """A run's preprocessed training (and evaluation) data."""

    train: PreparedSplit
    eval: PreparedSplit | None = None
    notes: list[str] = field(default_factory=list)


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


def _table(rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    if not rows:
        return pa.table({})
    return pa.table({key: _column([row[key] for row in rows]) for key in rows[0]})


def _work_range(bounds: tuple[int, int]) -> Any:
    assert _JOB is not None
    stage, options, encoder, samples = _JOB
    return _table(stage.preprocess(list(samples[bounds[0] : bounds[1]]), encoder, options))


def _work_chunk(job: tuple[Any, Any, Encoder, list[Any]]) -> Any:
    stage, options, encoder, samples = job
    return _table(stage.preprocess(samples, encoder, options))


def effective_workers(samples: int, workers: int) -> int:
    """Workers worth starting for ``samples`` samples (at most ``workers``)."""
    return max(1, min(workers, samples // MIN_SAMPLES_PER_WORKER))


def preprocess(stage: Any, options: Any, encoder: Encoder, samples: Sequence[Any], workers: int) -> Any:
    """Run ``stage.preprocess`` over ``samples`` in up to ``workers`` processes; return one Arrow table.

    Workers get contiguous chunks (several per worker, for balance) and the row order is kept. With ``fork``
    available, workers read the samples from the parent's memory; otherwise chunks are pickled to them.
    """
    import pyarrow as pa

    workers = effective_workers(len(samples), workers)
    if workers == 1:
        return _table(stage.preprocess(list(samples), encoder, options))
    size = math.ceil(len(samples) / (workers * 4))
    bounds = [(lo, min(lo + size, len(samples))) for lo in range(0, len(samples), size)]
    os.environ["TOKENIZERS_PARALLELISM"] = (
        "false"  # the workers are the parallelism; silences the fork warning
    )
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
    tables = [t for t in tables if t.num_columns]
    return pa.concat_tables(tables) if tables else pa.table({})


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
    loaded: dict[tuple[str, ...], list[Any]] = {}
    notes: list[str] = []

    def samples_of(names: list[str], split: str | None) -> list[Any]:
        if tuple(names) not in loaded:  # read each file once, even when both splits are rebuilt
            loaded[tuple(names)] = load_samples(names, data, plugins, kind, seed, stage=stage.name)
        samples = loaded[tuple(names)]
        if split is None:
            return samples
        train, evaluation = split_validation(samples, data.val_size, seed)
        return train if split == "train" else evaluation

    def prepared(names: list[str], role: str, split: str | None = None) -> PreparedSplit:
        counts: dict[str, int] = {}
        started = time.perf_counter()

        def build() -> Any:
            samples = samples_of(names, split)
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

        specs = resolve_datasets(names, data.dataset_dir)
        key = {**key_common, "data": dataset_fingerprint(specs), "split": [split, data.val_size, seed]}
        dataset = cached(key, build, data.cache_dir, data.overwrite_cache)
        return PreparedSplit(
            dataset=dataset,
            samples=counts.get("samples", dataset.num_rows),
            rows=dataset.num_rows,
            tokens=_token_count(dataset.data.table),
            seconds=time.perf_counter() - started,
            cached="samples" not in counts,
        )

    if data.eval_dataset:
        result = PreparedData(prepared(data.dataset, "training"), prepared(data.eval_dataset, "evaluation"))
    elif data.val_size > 0:
        result = PreparedData(
            prepared(data.dataset, "training", "train"), prepared(data.dataset, "evaluation", "eval")
        )
    else:
        result = PreparedData(prepared(data.dataset, "training"))
    result.notes = notes
    return result
