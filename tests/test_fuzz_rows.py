"""Property tests of the data path on generated rows, for every format ft-core reads: alpaca, sharegpt with both
tag styles (from/value and OpenAI's role/content), preference pairs (alpaca and sharegpt), KTO rows, prompt-only
sets, plain text, tool calls and images; in JSON, JSON lines, CSV and Parquet files, and as damaged bytes. Rows
are valid ones mutated: keys dropped or set to wrong types, unicode, huge strings, deep nesting, rows that are not
objects. The contract: ``ft-core validate`` exits 0, or 2 naming the data file (and the row); a row it accepts
tokenizes (the stage's ``preprocess`` on the tiny tokenizer) or raises DataError; nothing else, never a
traceback. ``FT_CORE_FUZZ=long`` runs thousands (CONTRIBUTING.md, "Tests")."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ft_core.api.errors import FtCoreError
from ft_core.cli import main
from ft_core.testing import save_tiny_model_dir
from ft_core.testing.fuzz import (
    files_under,
    fuzz_settings,
    hostile_text,
    hostile_values,
    run_cli,
    working_directory,
)

OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
    "observation_tag": "tool",
    "function_tag": "function_call",
}
TOOL = {"name": "get_weather", "description": "weather", "parameters": {"type": "object", "properties": {}}}

text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24).filter(str.strip)


def _turns(role: str, content: str, tags: dict[str, str], user: str, assistant: str) -> Callable[..., Any]:
    """A strategy of alternating user / assistant messages in the given tag style."""

    def build(pairs: list[tuple[str, str]], last_user: str | None) -> list[dict[str, str]]:
        messages = []
        for question, answer in pairs:
            messages += [{role: user, content: question}, {role: assistant, content: answer}]
        if last_user is not None:
            messages.append({role: user, content: last_user})
        return messages

    return build


def messages(tags: dict[str, str] | None = None, prompt_only: bool = False) -> st.SearchStrategy[Any]:
    """Valid sharegpt messages: from/value (``tags`` None) or OpenAI's role/content."""
    t = tags or {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    build = _turns(t["role_tag"], t["content_tag"], t, t["user_tag"], t["assistant_tag"])
    pairs = st.lists(st.tuples(text, text), min_size=0 if prompt_only else 1, max_size=3)
    return st.builds(build, pairs, text if prompt_only else st.none())


def answer(tags: dict[str, str] | None = None) -> st.SearchStrategy[Any]:
    t = tags or {"role_tag": "from", "content_tag": "value", "assistant_tag": "gpt"}
    return st.builds(lambda v: {t["role_tag"]: t["assistant_tag"], t["content_tag"]: v}, text)


def tool_conversation() -> st.SearchStrategy[Any]:
    """A sharegpt conversation that calls a tool, reads its observation and answers."""
    return st.builds(
        lambda q, city, result, reply: [
            {"from": "human", "value": q},
            {
                "from": "function_call",
                "value": json.dumps({"name": "get_weather", "arguments": {"city": city}}),
            },
            {"from": "observation", "value": result},
            {"from": "gpt", "value": reply},
        ],
        text,
        text,
        text,
        text,
    )


@dataclass(frozen=True)
class Format:
    """One way rows come: the dataset_info.json entry, the stage that reads it, and valid rows."""

    entry: dict[str, Any]
    stage: Any  # a name, or the stage section
    rows: st.SearchStrategy[dict[str, Any]]
    template: Any = None
    flat: bool = False  # every column a string: CSV can hold it
    #: Files of the fixture's folder the rows name (copied next to the data).
    extra_files: tuple[str, ...] = ()


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


#: GRPO fitting the tiny runs: two answers per prompt, short completions within cutoff_len.
GRPO = {"name": "grpo", "num_generations": 2, "max_completion_length": 16}

FORMATS: dict[str, Format] = {
    "alpaca": Format(
        {"columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}},
        "sft",
        st.fixed_dictionaries(
            {"instruction": text, "output": text}, optional={"input": text, "system": text}
        ),
        flat=True,
    ),
    "alpaca_history": Format(
        {"columns": {"prompt": "instruction", "response": "output", "history": "history"}},
        "sft",
        st.fixed_dictionaries(
            {"instruction": text, "output": text, "history": st.lists(st.lists(text, min_size=2, max_size=2))}
        ),
    ),
    "sharegpt": Format(
        {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"}},
        "sft",
        st.fixed_dictionaries({"conversations": messages()}, optional={"system": text}),
    ),
    "openai": Format(
        {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": OPENAI_TAGS},
        "sft",
        st.fixed_dictionaries({"messages": messages(OPENAI_TAGS)}),
    ),
    "preference": Format(
        {"ranking": True, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
        "dpo",
        st.fixed_dictionaries({"instruction": text, "chosen": text, "rejected": text}),
        flat=True,
    ),
    "preference_sharegpt": Format(
        {
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
        },
        "dpo",
        st.fixed_dictionaries(
            {"conversations": messages(prompt_only=True), "chosen": answer(), "rejected": answer()}
        ),
    ),
    "kto": Format(
        {
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "kto_tag": "label"},
            "tags": OPENAI_TAGS,
        },
        "kto",
        st.fixed_dictionaries({"messages": messages(OPENAI_TAGS), "label": st.booleans()}),
    ),
    "prompt": Format(
        {"columns": {"prompt": "instruction", "query": "input"}},
        GRPO,
        st.fixed_dictionaries({"instruction": text}, optional={"input": text}),
        flat=True,
    ),
    "prompt_sharegpt": Format(
        {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": OPENAI_TAGS},
        GRPO,
        st.fixed_dictionaries({"messages": messages(OPENAI_TAGS, prompt_only=True)}),
    ),
    "text": Format(
        {"formatting": "text", "columns": {"text": "text"}},
        "pt",
        st.fixed_dictionaries({"text": text}),
        flat=True,
    ),
    "tools": Format(
        {"formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}},
        "sft",
        st.fixed_dictionaries(
            {
                "conversations": tool_conversation(),
                "tools": st.sampled_from([json.dumps([TOOL]), [TOOL], TOOL]),
            }
        ),
        template={"name": "qwen", "check": "off"},
    ),
    "images": Format(
        {
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": OPENAI_TAGS,
        },
        "sft",
        st.builds(
            lambda q, a: {
                "messages": [{"role": "user", "content": f"<image>{q}"}, {"role": "assistant", "content": a}],
                "images": ["red.png"],
            },
            text,
            text,
        ),
        extra_files=("red.png",),
    ),
}


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-rows")
    save_tiny_model_dir(str(root / "model"))
    (root / "red.png").write_bytes(_png())
    return root


# --------------------------------------------------------------------------------------------- mutations
def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a row (keys and list indexes), outermost first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, row: dict[str, Any]) -> Any:
    """``row`` with one to three places changed: set to a hostile value, removed, or given an unknown key."""
    value: Any = json.loads(json.dumps(row))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        how = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if not path:
            if how == "set":
                value = draw(hostile_values())
            continue
        parent = value
        for part in path[:-1]:
            parent = parent[part]
        if how == "set":
            parent[path[-1]] = draw(st.one_of(hostile_values(), st.just("x" * 100_000)))
        elif how == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(hostile_text(12))] = draw(hostile_values())
        else:
            parent.append(draw(hostile_values()))
    return value


def rows_of(fmt: Format) -> st.SearchStrategy[list[Any]]:
    """A few rows: valid ones, with some mutated."""
    return st.lists(st.one_of(fmt.rows, fmt.rows.flatmap(mutated)), min_size=1, max_size=4)


# --------------------------------------------------------------------------------------------- writing
def _csv(rows: list[Any], path: Path) -> None:
    names = list(dict.fromkeys(k for row in rows if isinstance(row, dict) for k in row if isinstance(k, str)))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names or ["x"], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: v for k, v in row.items() if isinstance(k, str)} if isinstance(row, dict) else {}
            )


def write_rows(folder: Path, rows: list[Any], how: str) -> str:
    """The rows as a file named ``data.<ext>`` in ``folder``; returns its name."""
    if how == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(
                pa.Table.from_pylist([r for r in rows if isinstance(r, dict)] or [{}]),
                folder / "data.parquet",
            )
            return "data.parquet"
        except Exception:  # types Arrow cannot hold in one column: write JSON instead
            how = "json"
    if how == "csv":
        _csv(rows, folder / "data.csv")
        return "data.csv"
    if how == "jsonl":
        (folder / "data.jsonl").write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8"
        )
        return "data.jsonl"
    (folder / "data.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return "data.json"


def config_for(root: Path, fmt: Format, folder: Path) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model": {"name_or_path": str(root / "model")},
        "stage": fmt.stage,
        "data": {"dataset": ["fuzzed"], "dataset_dir": str(folder), "cutoff_len": 48},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "training": {
            "output_dir": str(folder / "run"),
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "use_cpu": True,
        },
    }
    if fmt.template is not None:
        config["template"] = fmt.template
    return config


# --------------------------------------------------------------------------------------------- the contract
def tokenize(config_path: Path) -> int:
    """Convert and tokenize the rows as preparation does (the stage's ``preprocess`` on the tiny tokenizer, one
    process, no cache); returns the rows made."""
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.config.rules import RuleContext
    from ft_core.engine.data.prepare import preprocess
    from ft_core.engine.run.plan import make_encoder
    from ft_core.engine.run.runner import load_and_validate

    plugins = load_plugins()
    config = load_and_validate(str(config_path), [], plugins)
    ctx = RuleContext(config, plugins)
    template = ctx.template if config.stage.component.data_kind != "text" else None
    encoder = make_encoder(config, plugins, ctx.tokenizer, template, ctx.family, config.model.name_or_path)
    table = preprocess(config.stage.component, config.stage.options, encoder, ctx.samples, workers=1)
    return int(table.num_rows)


def check_rows(root: Path, fmt: Format, write: Callable[[Path], str]) -> Any:
    """Write the dataset with ``write(folder) -> file name``, validate it, tokenize what validates."""
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        folder = Path(scratch)
        for name in fmt.extra_files:
            (folder / name).write_bytes((root / name).read_bytes())
        file_name = write(folder)
        info = {"fuzzed": {"file_name": file_name, **fmt.entry}}
        (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config_for(root, fmt, folder)), encoding="utf-8")
        before = files_under(folder)
        with working_directory(folder):
            result = run_cli(main, ["validate", str(path)])
            result.check(file_name, "dataset_info.json", str(path))
            if result.status == 0:
                try:
                    tokenize(path)
                except FtCoreError as exc:  # a DataError of preprocessing: it names the data
                    assert file_name in str(exc) or "data." in str(exc), str(exc)
        assert files_under(folder) == before, "validation or tokenizing wrote files"
    return result


# --------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_valid_rows_of_every_format_validate_and_tokenize(fuzz_root: Path, name: str) -> None:
    """The generators make rows ft-core accepts (so the mutated ones test the checks, not a broken baseline)."""
    fmt = FORMATS[name]

    @fuzz_settings(3)
    @given(rows=st.lists(fmt.rows, min_size=1, max_size=3))
    def check(rows: list[Any]) -> None:
        result = check_rows(fuzz_root, fmt, lambda folder: write_rows(folder, rows, "json"))
        assert result.status == 0, result.stderr

    check()


@fuzz_settings(150)
@given(
    data=st.data(),
    name=st.sampled_from(sorted(FORMATS)),
    how=st.sampled_from(["json", "jsonl", "csv", "parquet"]),
)
def test_mutated_rows_convert_or_are_named(fuzz_root: Path, data: st.DataObject, name: str, how: str) -> None:
    fmt = FORMATS[name]
    if how == "csv" and not fmt.flat:
        how = "jsonl"
    rows = data.draw(rows_of(fmt))
    check_rows(fuzz_root, fmt, lambda folder: write_rows(folder, rows, how))


#: Damage to a data file's bytes: truncation, bad UTF-8, BOMs, NaN, deep nesting, stray brackets.
BYTE_DAMAGE = (
    b"",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\x80abc",
    b"[",
    b"]",
    b"{",
    b",",
    b"NaN",
    b"Infinity",
    b"1e99999",
    b'"\\ud800"',
    b"[" * 5000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"\n\n\n",
    b"\r",
    b'"',
)


@fuzz_settings(60)
@given(data=st.data(), name=st.sampled_from(sorted(FORMATS)), how=st.sampled_from(["json", "jsonl", "csv"]))
def test_damaged_data_files_are_refused_naming_the_file(
    fuzz_root: Path, data: st.DataObject, name: str, how: str
) -> None:
    fmt = FORMATS[name]
    rows = data.draw(st.lists(fmt.rows, min_size=1, max_size=3))
    damage = [
        (
            data.draw(st.floats(0, 1)),
            data.draw(st.one_of(st.sampled_from(BYTE_DAMAGE), st.binary(max_size=8))),
        )
        for _ in range(data.draw(st.integers(1, 3)))
    ]

    def write(folder: Path) -> str:
        file_name = write_rows(folder, rows, how if fmt.flat or how != "csv" else "json")
        content = (folder / file_name).read_bytes()
        for where, piece in damage:
            at = int(where * len(content))
            content = content[:at] + piece + content[at:]
        (folder / file_name).write_bytes(content)
        return file_name

    check_rows(fuzz_root, fmt, write)


@fuzz_settings(40)
@given(data=st.data(), name=st.sampled_from(sorted(FORMATS)))
def test_mutated_dataset_info_entries_are_refused_naming_the_json(
    fuzz_root: Path, data: st.DataObject, name: str
) -> None:
    """``dataset_info.json`` entries with keys of the wrong type, unknown columns and tags, or missing files."""
    fmt = FORMATS[name]
    rows = data.draw(st.lists(fmt.rows, min_size=1, max_size=2))
    entry = data.draw(mutated({"file_name": "data.json", **fmt.entry}))
    broken = Format(
        entry={}, stage=fmt.stage, rows=fmt.rows, template=fmt.template, extra_files=fmt.extra_files
    )

    def write(folder: Path) -> str:
        write_rows(folder, rows, "json")
        return "data.json"

    with tempfile.TemporaryDirectory(dir=fuzz_root) as scratch:
        folder = Path(scratch)
        write(folder)
        (folder / "dataset_info.json").write_text(json.dumps({"fuzzed": entry}), encoding="utf-8")
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config_for(fuzz_root, broken, folder)), encoding="utf-8")
        with working_directory(folder):
            run_cli(main, ["validate", str(path)]).check(
                "dataset_info.json", "data.json", str(path), "fuzzed"
            )
