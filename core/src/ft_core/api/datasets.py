"""What a dataset is to ft-core: one ``dataset_info.json`` entry (LLaMA-Factory compatible) as a typed spec.

Dataset-format plugins receive a :class:`DatasetSpec` with each row. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

#: What a training stage consumes, and what a dataset entry must provide for it:
#: ``conversation`` chat rows; ``preference`` chat rows with chosen / rejected answers (``ranking: true``);
#: ``kto`` chat rows with a boolean ``kto_tag`` column; ``prompt`` chat rows whose last
#: (assistant) turn is the reference answer that online-RL reward functions may read, prompted with the turns
#: before it, or prompt-only rows (alpaca without its response, sharegpt ending with a user turn: no answer);
#: ``text`` plain documents.
DataKind = Literal["conversation", "preference", "kto", "prompt", "text"]
DATA_KINDS: tuple[str, ...] = ("conversation", "preference", "kto", "prompt", "text")


@dataclass(frozen=True)
class Columns:
    """Column names of a dataset file (LLaMA-Factory's defaults; ``None`` means the column is absent)."""

    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    messages: str | None = "conversations"
    system: str | None = None
    tools: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None
    text: str | None = "text"
    #: Image files of a sharegpt row (a list of paths, relative to the dataset folder), one per ``<image>``.
    images: str | None = None


@dataclass(frozen=True)
class Tags:
    """Role / content keys and role values of sharegpt messages (LLaMA-Factory's defaults)."""

    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    observation_tag: str = "observation"
    function_tag: str = "function_call"
    system_tag: str = "system"


@dataclass(frozen=True)
class DatasetSpec:
    """One ``dataset_info.json`` entry.

    ``dataset_dir`` is the folder ``file_name`` is relative to and ``info_file`` the json that defined the
    entry (both for messages and for locating the data). ``split`` is kept for compatibility: local files
    have a single split.
    """

    name: str
    file_name: str
    dataset_dir: str
    info_file: str
    formatting: str = "alpaca"
    ranking: bool = False
    columns: Columns = field(default_factory=Columns)
    tags: Tags = field(default_factory=Tags)
    num_samples: int | None = None
    split: str = "train"
    #: The folder image paths in rows are relative to (``data.media_dir``); ``None``: ``dataset_dir``.
    media_dir: str | None = None

    @property
    def path(self) -> Path:
        """The data file or folder."""
        return Path(self.dataset_dir) / self.file_name

    @property
    def media_root(self) -> Path:
        """The folder image paths in rows are relative to."""
        return Path(self.media_dir or self.dataset_dir)

    def to_json(self) -> dict[str, Any]:
        """The location-independent part of the entry (what decides the converted samples)."""
        return {
            "file_name": self.file_name,
            "formatting": self.formatting,
            "ranking": self.ranking,
            "columns": {f.name: getattr(self.columns, f.name) for f in fields(Columns)},
            "tags": {f.name: getattr(self.tags, f.name) for f in fields(Tags)},
            "num_samples": self.num_samples,
            "split": self.split,
        }
