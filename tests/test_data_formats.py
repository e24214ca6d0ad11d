"""Readers for every supported file type and the alpaca / sharegpt / text formats (LLaMA-Factory semantics)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ft_core.api.conversation import Conversation
from ft_core.engine.data.formats import AlpacaFormat, ShareGptFormat, TextFormat
from ft_core.engine.data.readers import read_rows
from ft_core.engine.data.registry import Columns, DatasetSpec, Tags

ROWS = [{"instruction": "a", "output": "1"}, {"instruction": "b", "output": "2"}]


def spec(formatting: str = "alpaca", **kwargs) -> DatasetSpec:
    """A spec for format tests (the file is never read)."""
    return DatasetSpec(
        name="t",
        file_name="t.json",
        dataset_dir=".",
        info_file="dataset_info.json",
        formatting=formatting,
        **kwargs,
    )


def roles(conversation: Conversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conversation.messages]


# --------------------------------------------------------------------------- readers
def test_json_array(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS, indent=2))
    assert list(read_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]


def test_json_lines_in_json_and_jsonl(tmp_path: Path) -> None:
    text = json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n"
    for name in ("d.json", "d.jsonl"):
        (tmp_path / name).write_text(text)
        assert list(read_rows(tmp_path / name)) == [(1, ROWS[0]), (3, ROWS[1])]  # line numbers


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('instruction,output\na,1\n"b, with comma","2"\n')
    assert list(read_rows(path)) == [
        (1, {"instruction": "a", "output": "1"}),
        (2, {"instruction": "b, with comma", "output": "2"}),
    ]


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert list(read_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]


def test_txt_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("first line\n\n  \nsecond line\n")
    assert list(read_rows(path)) == [(1, {"text": "first line"}), (4, {"text": "second line"})]


def test_folder_reads_supported_files_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(json.dumps(ROWS[1]) + "\n")
    (tmp_path / "a.json").write_text(json.dumps([ROWS[0]]))
    (tmp_path / ".hidden.json").write_text("not json")
    (tmp_path / "README.md").write_text("# notes")
    assert [row for _, row in read_rows(tmp_path)] == ROWS


# --------------------------------------------------------------------------- alpaca
def test_alpaca_instruction_and_input_joined() -> None:
    row = {"instruction": "Translate.", "input": "Hello", "output": "Bonjour"}
    assert roles(AlpacaFormat().convert(row, spec())) == [
        ("user", "Translate.\nHello"),
        ("assistant", "Bonjour"),
    ]


def test_alpaca_empty_or_missing_input_gives_instruction_only() -> None:
    for row in (
        {"instruction": "Hi", "input": "", "output": "Hello"},
        {"instruction": "Hi", "output": "Hello"},
    ):
        assert roles(AlpacaFormat().convert(row, spec())) == [("user", "Hi"), ("assistant", "Hello")]


def test_alpaca_system_and_history() -> None:
    row = {"instruction": "q3", "output": "a3", "sys": "Be brief.", "hist": [["q1", "a1"], ["q2", "a2"]]}
    conversation = AlpacaFormat().convert(row, spec(columns=Columns(system="sys", history="hist")))
    assert roles(conversation) == [
        ("system", "Be brief."),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("assistant", "a3"),
    ]
    assert [i for i, m in enumerate(conversation.messages) if m.role == "assistant"] == [2, 4, 6]


def test_alpaca_custom_columns_and_tools() -> None:
    row = {"q": "Weather?", "a": "Sunny.", "tools": json.dumps([{"name": "get_weather", "parameters": {}}])}
    columns = Columns(prompt="q", query=None, response="a", tools="tools")
    conversation = AlpacaFormat().convert(row, spec(columns=columns))
    assert roles(conversation) == [("user", "Weather?"), ("assistant", "Sunny.")]
    assert conversation.tools == [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def test_alpaca_ranking_and_kto_tag() -> None:
    columns = Columns(chosen="chosen", rejected="rejected", kto_tag="label")
    row = {"instruction": "Pick", "chosen": "good", "rejected": "bad", "label": True}
    conversation = AlpacaFormat().convert(row, spec(ranking=True, columns=columns))
    assert roles(conversation) == [("user", "Pick"), ("assistant", "good")]
    assert conversation.extra["rejected"].content == "bad"
    assert conversation.extra["kto_tag"] is True


# --------------------------------------------------------------------------- sharegpt
def turn(tag: str, value: str) -> dict[str, str]:
    return {"from": tag, "value": value}


def test_sharegpt_multi_turn_with_system_message() -> None:
    row = {
        "conversations": [
            turn("system", "S"),
            turn("human", "h1"),
            turn("gpt", "g1"),
            turn("human", "h2"),
            turn("gpt", "g2"),
        ]
    }
    conversation = ShareGptFormat().convert(row, spec("sharegpt"))
    assert roles(conversation) == [
        ("system", "S"),
        ("user", "h1"),
        ("assistant", "g1"),
        ("user", "h2"),
        ("assistant", "g2"),
    ]


def test_sharegpt_system_column() -> None:
    row = {"conversations": [turn("human", "h"), turn("gpt", "g")], "system": "S"}
    conversation = ShareGptFormat().convert(row, spec("sharegpt", columns=Columns(system="system")))
    assert roles(conversation)[0] == ("system", "S")


def test_sharegpt_openai_style_tags() -> None:
    tags = Tags(
        role_tag="role",
        content_tag="content",
        user_tag="user",
        assistant_tag="assistant",
        system_tag="system",
    )
    row = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
        ]
    }
    conversation = ShareGptFormat().convert(
        row, spec("sharegpt", columns=Columns(messages="messages"), tags=tags)
    )
    assert roles(conversation) == [("system", "S"), ("user", "u"), ("assistant", "a")]


def test_sharegpt_function_call_observation_and_tools() -> None:
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    row = {
        "conversations": [
            turn("human", "Weather in Oslo?"),
            turn("function_call", json.dumps(call)),
            turn("observation", '{"temp": 3}'),
            turn("gpt", "It is 3 degrees."),
        ],
        "tools": [{"name": "get_weather", "description": "d", "parameters": {"type": "object"}}],
    }
    conversation = ShareGptFormat().convert(row, spec("sharegpt", columns=Columns(tools="tools")))
    assert roles(conversation) == [
        ("user", "Weather in Oslo?"),
        ("assistant", ""),
        ("tool", '{"temp": 3}'),
        ("assistant", "It is 3 degrees."),
    ]
    assert conversation.messages[1].tool_calls == [{"type": "function", "function": call}]
    assert conversation.tools == [{"type": "function", "function": row["tools"][0]}]
    assert conversation.to_hf()[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


def test_sharegpt_parallel_function_calls_with_string_arguments() -> None:
    calls = [{"name": "a", "arguments": '{"x": 1}'}, {"name": "b", "arguments": {"y": 2}}]
    row = {"conversations": [turn("human", "h"), turn("function_call", json.dumps(calls))]}
    conversation = ShareGptFormat().convert(row, spec("sharegpt"))
    assert [c["function"]["arguments"] for c in conversation.messages[-1].tool_calls] == [{"x": 1}, {"y": 2}]


def test_sharegpt_ranking() -> None:
    columns = Columns(chosen="chosen", rejected="rejected")
    row = {
        "conversations": [turn("human", "h")],
        "chosen": turn("gpt", "good"),
        "rejected": turn("gpt", "bad"),
    }
    conversation = ShareGptFormat().convert(row, spec("sharegpt", ranking=True, columns=columns))
    assert roles(conversation) == [("user", "h"), ("assistant", "good")]
    assert conversation.extra["rejected"].content == "bad"


# --------------------------------------------------------------------------- text
def test_text_format_reads_text_column() -> None:
    assert TextFormat().convert({"text": "A document."}, spec("text")) == "A document."
    assert TextFormat().convert({"body": "B."}, spec("text", columns=Columns(text="body"))) == "B."


def test_text_format_reads_prompt_column_of_alpaca_datasets() -> None:
    c4_like = spec(columns=Columns(prompt="text"))
    assert TextFormat().convert({"text": "A paragraph."}, c4_like) == "A paragraph."
    assert (
        TextFormat().convert({"instruction": "Do it.", "output": "x"}, replace(c4_like, columns=Columns()))
        == "Do it."
    )
