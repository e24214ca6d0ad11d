"""Loading datasets end to end: demo sets, registry merging, sampling, validation splits, fingerprints, cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ft_core.api.config import DataSection
from ft_core.api.conversation import Conversation
from ft_core.api.errors import DataError
from ft_core.engine.data.cache import cached
from ft_core.engine.data.formats import AlpacaFormat, ShareGptFormat, TextFormat
from ft_core.engine.data.loader import dataset_fingerprint, load_samples, split_validation
from ft_core.engine.data.registry import DEMO_DATA_DIR, resolve_datasets

#: The names ``ft_core.builtin`` registers these formats under.
BUILTIN_FORMATS = {"alpaca": AlpacaFormat(), "sharegpt": ShareGptFormat(), "text": TextFormat()}


class BuiltinFormats:
    """Stands in for ``ft_core.engine.plugins.Plugins`` in ``load_samples``: ``get(kind, name)`` returns the built-in
    dataset format (the same classes ``ft_core.builtin`` registers), so these tests need no plugin manager."""

    def get(self, kind: str, name: str) -> Any:
        return BUILTIN_FORMATS[name]


def load(names: list[str], produces: str = "conversation", seed: int = 0, **data: Any) -> list:
    return load_samples(names, DataSection(**data), BuiltinFormats(), produces, seed=seed)


def write_rows(tmp_path: Path, count: int, entry: dict[str, Any] | None = None) -> str:
    """Register ``count`` alpaca rows as dataset ``d``; returns the dataset_dir."""
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(count)]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json", **(entry or {})}}))
    return str(tmp_path)


# --------------------------------------------------------------------------- demo datasets
def test_demo_datasets_load_and_are_valid(tmp_path: Path) -> None:
    sizes = {"identity": 60, "alpaca_en_demo": 80, "sharegpt_demo": 18, "toolcall_demo": 96}
    for name, size in sizes.items():
        samples = load([name], dataset_dir=str(tmp_path))
        assert len(samples) == size
        assert all(isinstance(s, Conversation) and s.messages[-1].role == "assistant" for s in samples)
        assert all(s.source.startswith(str(DEMO_DATA_DIR / f"{name}.json") + " row ") for s in samples)
    texts = load(["c4_demo"], produces="text", dataset_dir=str(tmp_path))
    assert len(texts) == 60
    assert all(100 <= len(t.split()) <= 200 for t in texts)
    assert sum(path.stat().st_size for path in DEMO_DATA_DIR.rglob("*") if path.is_file()) < 600_000


def test_demo_sets_cover_system_history_and_tools(tmp_path: Path) -> None:
    alpaca = load(["alpaca_en_demo"], dataset_dir=str(tmp_path))
    assert any(s.messages[0].role == "system" for s in alpaca)
    assert any(sum(m.role == "assistant" for m in s.messages) > 1 for s in alpaca)
    sharegpt = load(["sharegpt_demo"], dataset_dir=str(tmp_path))
    assert any(s.messages[0].role == "system" for s in sharegpt)
    tools = load(["toolcall_demo"], dataset_dir=str(tmp_path))
    assert all(s.tools for s in tools)
    calling = [s for s in tools if any(m.role == "tool" for m in s.messages)]
    assert len(calling) == 72  # three in four rows call a tool; the others are answered directly
    assert {c["function"]["name"] for s in calling for m in s.messages for c in m.tool_calls or []} == {
        "get_weather",
        "convert_currency",
        "get_time",
    }


def test_identity_teaches_nova(tmp_path: Path) -> None:
    samples = load(["identity"], dataset_dir=str(tmp_path))
    pairs = {s.messages[0].content: s.messages[-1].content for s in samples}
    assert pairs["Who are you?"].startswith("I am Nova, an AI assistant developed by the ft-core team.")
    assert all("Nova" in answer and "ft-core" in answer for answer in pairs.values())
    assert all(len(q) + len(a) < 200 for q, a in pairs.items())  # well under 60 tokens per row


def test_c4_demo_is_not_a_conversation_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="output: missing column 'output'"):
        load(["c4_demo"], dataset_dir=str(tmp_path))


# --------------------------------------------------------------------------- registry and selection
def test_user_entry_overrides_demo_entry(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("line one\nline two\n")
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"identity": {"file_name": "mine.txt", "formatting": "text"}})
    )
    (spec,) = resolve_datasets(["identity"], tmp_path)
    assert spec.path == tmp_path / "mine.txt"
    assert load(["identity"], produces="text", dataset_dir=str(tmp_path)) == ["line one", "line two"]


def test_folder_dataset_and_concatenation(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "1.jsonl").write_text(json.dumps({"instruction": "q1", "output": "a1"}) + "\n")
    (folder / "2.csv").write_text("instruction,output\nq2,a2\n")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"parts": {"file_name": "parts"}}))
    samples = load(["parts", "identity"], dataset_dir=str(tmp_path))
    assert [s.messages[0].content for s in samples[:2]] == ["q1", "q2"]
    assert samples[1].source == f"{folder / '2.csv'} row 1"
    assert len(samples) == 62


def test_max_samples_keeps_first_rows_of_each_dataset(tmp_path: Path) -> None:
    samples = load(["d", "identity"], max_samples=3, dataset_dir=write_rows(tmp_path, 10))
    assert [s.messages[0].content for s in samples[:3]] == ["q0", "q1", "q2"]
    assert len(samples) == 6


def test_num_samples_draws_with_seed_and_oversamples(tmp_path: Path) -> None:
    dataset_dir = write_rows(tmp_path, 10, {"num_samples": 4})
    first = [s.messages[0].content for s in load(["d"], dataset_dir=dataset_dir, seed=1)]
    assert len(first) == 4 and len(set(first)) == 4
    assert first == [s.messages[0].content for s in load(["d"], dataset_dir=dataset_dir, seed=1)]
    dataset_dir = write_rows(tmp_path, 3, {"num_samples": 7})
    drawn = [s.messages[0].content for s in load(["d"], dataset_dir=dataset_dir)]
    assert len(drawn) == 7 and set(drawn) == {"q0", "q1", "q2"}


def test_progress_bar_for_large_datasets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "big.txt").write_text("".join(f"line {i}\n" for i in range(10_001)))
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"big": {"file_name": "big.txt", "formatting": "text"}})
    )
    assert len(load(["big"], produces="text", dataset_dir=str(tmp_path))) == 10_001
    assert "Converting big" in capsys.readouterr().err
    load(["d"], dataset_dir=write_rows(tmp_path, 5))
    assert "Converting" not in capsys.readouterr().err


# --------------------------------------------------------------------------- validation split
def test_split_validation_fraction_and_count() -> None:
    train, evaluation = split_validation(list(range(10)), 0.25, seed=0)
    assert len(evaluation) == 3 and len(train) == 7
    assert sorted(train + evaluation) == list(range(10)) and train == sorted(train)
    assert split_validation(list(range(10)), 0.25, seed=0) == (train, evaluation)
    train, evaluation = split_validation(list(range(10)), 4, seed=0)
    assert (len(train), len(evaluation)) == (6, 4)
    assert split_validation([1, 2], 0.0, seed=0) == ([1, 2], [])


@pytest.mark.parametrize(
    ("val_size", "message"),
    [(10, "leaves none for training"), (0.999, "leaves none"), (-0.1, "must be"), (2.5, "whole row count")],
)
def test_split_validation_errors(val_size: float, message: str) -> None:
    with pytest.raises(DataError, match=message):
        split_validation(list(range(10)), val_size, seed=0)


# --------------------------------------------------------------------------- fingerprint and cache
def test_fingerprint_follows_content_and_spec(tmp_path: Path) -> None:
    dataset_dir = write_rows(tmp_path, 3)
    before = dataset_fingerprint(resolve_datasets(["d"], dataset_dir))
    assert before == dataset_fingerprint(resolve_datasets(["d"], dataset_dir))
    write_rows(tmp_path, 4)
    changed_rows = dataset_fingerprint(resolve_datasets(["d"], dataset_dir))
    write_rows(tmp_path, 4, {"columns": {"system": "system"}})
    changed_spec = dataset_fingerprint(resolve_datasets(["d"], dataset_dir))
    assert len({before, changed_rows, changed_spec}) == 3


def test_a_moved_image_dataset_gets_a_new_fingerprint(tmp_path: Path) -> None:
    """Prepared rows of an image dataset hold the images' absolute paths: a copy elsewhere must not reuse them
    (a text dataset's fingerprint is location-independent)."""
    import shutil

    image_entry = {"formatting": "sharegpt", "columns": {"messages": "conversations", "images": "images"}}
    fingerprints = {}
    for name, entry in (("text", None), ("images", image_entry)):
        first = write_rows(tmp_path / name / "a", 3, entry)
        moved = shutil.copytree(first, tmp_path / name / "b")
        fingerprints[name] = {dataset_fingerprint(resolve_datasets(["d"], str(d))) for d in (first, moved)}
    assert len(fingerprints["text"]) == 1 and len(fingerprints["images"]) == 2


def test_cache_miss_hit_and_overwrite(tmp_path: Path) -> None:
    calls: list[int] = []

    def build() -> Any:
        import pyarrow as pa

        calls.append(1)
        return pa.table({"input_ids": [[1, 2, 3], [4]], "labels": [[-100, 2, 3], [4]]})

    key = {"fingerprint": "abc", "cutoff_len": 16}
    first = cached(key, build, str(tmp_path), overwrite=False)
    assert len(calls) == 1 and first[0] == {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}
    second = cached(dict(reversed(key.items())), build, str(tmp_path), overwrite=False)
    assert len(calls) == 1 and second.to_list() == first.to_list()
    cached(key, build, str(tmp_path), overwrite=True)
    assert len(calls) == 2
    cached({**key, "cutoff_len": 32}, build, str(tmp_path), overwrite=False)
    assert len(calls) == 3
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 2 and not any(".tmp-" in name for name in entries)


def test_cache_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def build() -> Any:
        raise RuntimeError("tokenizer exploded")

    with pytest.raises(RuntimeError):
        cached({"k": 1}, build, str(tmp_path), overwrite=False)
    assert list(tmp_path.iterdir()) == []
