"""Every user mistake in data gives a DataError naming the file, the row / key and what was expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ft_core.api.config import DataSection
from ft_core.api.errors import ComponentNotFoundError, DataError
from ft_core.engine.data.formats import NO_ANSWER, AlpacaFormat, RowError, ShareGptFormat, TextFormat
from ft_core.engine.data.loader import load_samples
from ft_core.engine.data.readers import read_rows
from ft_core.engine.data.registry import Columns, DatasetSpec, load_dataset_info, resolve_datasets

#: The names ``ft_core.builtin`` registers these formats under.
BUILTIN_FORMATS = {"alpaca": AlpacaFormat(), "sharegpt": ShareGptFormat(), "text": TextFormat()}


class BuiltinFormats:
    """Stands in for ``ft_core.engine.plugins.Plugins`` in ``load_samples``: ``get(kind, name)`` returns the built-in
    dataset format (the same classes ``ft_core.builtin`` registers), so these tests need no plugin manager."""

    def get(self, kind: str, name: str) -> Any:
        assert kind == "dataset_format"
        if name not in BUILTIN_FORMATS:
            raise ComponentNotFoundError(
                f"unknown dataset format {name!r}. Available: {', '.join(BUILTIN_FORMATS)}."
            )
        return BUILTIN_FORMATS[name]


def write_dataset(
    tmp_path: Path, rows: Any, entry: dict[str, Any] | None = None, name: str = "d.json"
) -> DataSection:
    """Write ``rows`` as ``name`` plus a dataset_info.json registering it as dataset ``d``."""
    (tmp_path / name).write_text(rows if isinstance(rows, str) else json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": name, **(entry or {})}}))
    return DataSection(dataset_dir=str(tmp_path))


def load(data: DataSection, produces: str = "conversation") -> list:
    return load_samples(["d"], data, BuiltinFormats(), produces, seed=0)


def info_error(tmp_path: Path, info: Any) -> str:
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(DataError) as caught:
        load_dataset_info(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "dataset_info.json") in message
    return message


# --------------------------------------------------------------------------- files
def test_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"instruction": "a"},\n  {"instruction": "b",}\n]')
    with pytest.raises(DataError, match=r"d\.json: invalid JSON at line 3, column 23"):
        list(read_rows(path))


def test_row_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"a": 1}] * 6 + [["not", "an", "object"]]))
    with pytest.raises(DataError, match=r"d\.json: row 7 is a list, expected an object"):
        list(read_rows(path))


def test_bad_json_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"d\.jsonl: line 2, column 7: invalid JSON"):
        list(read_rows(path))


def test_csv_row_with_too_many_fields(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("instruction,output\na,1\nb,2,3\n")
    with pytest.raises(DataError, match=r"d\.csv: row 2 \(line 3\) has more fields than the header"):
        list(read_rows(path))


def test_unsupported_extension_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(
        DataError,
        match=r"unsupported file type '\.xlsx'; supported: \.json, \.jsonl, \.csv, \.parquet, \.txt",
    ):
        list(read_rows(path))


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(DataError, match="the folder holds no data files"):
        list(read_rows(tmp_path))


# --------------------------------------------------------------------------- dataset_info.json
def test_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    message = info_error(tmp_path, {"mine": {"file_nmae": "d.json"}})
    assert "dataset 'mine': unknown key 'file_nmae'. Did you mean 'file_name'?" in message


def test_unknown_column_with_did_you_mean(tmp_path: Path) -> None:
    message = info_error(tmp_path, {"mine": {"file_name": "d.json", "columns": {"promt": "q"}}})
    assert "dataset 'mine': columns: unknown key 'promt'. Did you mean 'prompt'?" in message


def test_unknown_tag_with_did_you_mean(tmp_path: Path) -> None:
    message = info_error(
        tmp_path, {"mine": {"file_name": "d.json", "formatting": "sharegpt", "tags": {"role": "from"}}}
    )
    assert "tags: unknown key 'role'. Did you mean 'role_tag'?" in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"file_name": "d.json", "ranking": "yes"}, "key 'ranking' must be true or false, got str 'yes'"),
        (
            {"file_name": "d.json", "num_samples": 0},
            "key 'num_samples' must be a positive integer or null, got int 0",
        ),
        ({"file_name": 3}, "key 'file_name' must be a non-empty string, got int 3"),
        ({"file_name": "d.json", "columns": ["a"]}, "key 'columns' must be an object, got list"),
        (
            {"file_name": "d.json", "columns": {"prompt": 1}},
            "columns: key 'prompt' must be a string or null, got int 1",
        ),
        (
            {"file_name": "d.json", "columns": {"videos": "vid"}},
            "columns.videos: video and audio datasets are not supported",
        ),
        ({"hf_hub_url": "org/data"}, "'hf_hub_url' datasets are not downloaded by ft-core"),
        ({"formatting": "alpaca"}, "missing key 'file_name'"),
    ],
)
def test_wrong_entries(tmp_path: Path, entry: dict[str, Any], expected: str) -> None:
    message = info_error(tmp_path, {"mine": entry})
    assert "dataset 'mine'" in message
    assert expected in message


def test_invalid_json_in_dataset_info(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text('{"mine": {"file_name": "d.json",}}')
    with pytest.raises(DataError, match=r"dataset_info\.json: invalid JSON at line 1, column 33"):
        load_dataset_info(tmp_path)


def test_unknown_dataset_lists_available_with_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        resolve_datasets(["identiy"], tmp_path)
    message = str(caught.value)
    assert "unknown dataset 'identiy'. Did you mean 'identity'?" in message
    assert "alpaca_en_demo, c4_demo, dpo_en_demo, identity, kto_en_demo, sharegpt_demo" in message


def test_missing_data_file(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "absent.json"}}))
    with pytest.raises(DataError, match=r"dataset 'mine': file_name 'absent\.json' not found"):
        resolve_datasets(["mine"], tmp_path)


# --------------------------------------------------------------------------- rows
def sharegpt_spec(**kwargs: Any) -> DatasetSpec:
    return DatasetSpec(
        name="t", file_name="t.json", dataset_dir=".", info_file="i.json", formatting="sharegpt", **kwargs
    )


def row_error(convert: Any) -> RowError:
    """The error ``convert()`` raises, or the one it attaches to a prompt-only row (no answer: stages of prompt
    data read it, the others raise the error)."""
    try:
        conversation = convert()
    except RowError as exc:
        return exc
    error = conversation.extra.get(NO_ANSWER)
    assert isinstance(error, RowError), "no error raised or attached"
    return error


def sharegpt_error(messages: list[dict[str, Any]]) -> RowError:
    error = row_error(lambda: ShareGptFormat().convert({"conversations": messages}, sharegpt_spec()))
    assert error.column == "conversations"
    return error


def test_sharegpt_alternation_error() -> None:
    error = sharegpt_error(
        [
            {"from": "human", "value": "a"},
            {"from": "gpt", "value": "b"},
            {"from": "human", "value": "c"},
            {"from": "human", "value": "d"},
        ]
    )
    assert str(error) == "message 4: expected 'gpt' or 'function_call' after 'human', got 'human'"


def test_sharegpt_other_errors() -> None:
    assert "message 1: expected 'human' or 'observation' at the start, got 'gpt'" in str(
        sharegpt_error([{"from": "gpt", "value": "x"}])
    )
    assert "unknown role 'bot'" in str(sharegpt_error([{"from": "bot", "value": "x"}]))
    assert "must follow a 'function_call' turn" in str(
        sharegpt_error(
            [
                {"from": "human", "value": "a"},
                {"from": "gpt", "value": "b"},
                {"from": "observation", "value": "c"},
                {"from": "gpt", "value": "d"},
            ]
        )
    )
    assert "ends with a 'human' turn" in str(sharegpt_error([{"from": "human", "value": "a"}]))
    assert "missing key 'value'" in str(sharegpt_error([{"from": "human", "text": "a"}]))
    assert "no turns besides the system message" in str(sharegpt_error([{"from": "system", "value": "s"}]))
    assert "a function call must be" in str(
        sharegpt_error([{"from": "human", "value": "a"}, {"from": "function_call", "value": '{"x": 1}'}])
    )


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ({"output": "x"}, "instruction", "missing column 'instruction' (the instruction)"),
        ({"instruction": "q", "output": "  "}, "output", "empty response"),
        ({"instruction": "q"}, "output", "missing column 'output' (the response)"),
        ({"instruction": ["q"], "output": "a"}, "instruction", "expected a string, got list"),
        (
            {"instruction": "q", "output": "a", "history": [["only one"]]},
            "history",
            "expected a [query, response] pair",
        ),
    ],
)
def test_alpaca_row_errors(row: dict[str, Any], column: str, message: str) -> None:
    spec = DatasetSpec(
        name="t", file_name="t.json", dataset_dir=".", info_file="i.json", columns=Columns(history="history")
    )
    error = row_error(lambda: AlpacaFormat().convert(row, spec))
    assert error.column == column
    assert message in str(error)


def test_bad_row_error_names_file_row_and_column(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, [{"instruction": "a", "output": "1"}, {"instruction": "b", "output": ""}])
    with pytest.raises(DataError) as caught:
        load(data)
    assert f"{tmp_path / 'd.json'}: row 2: output: empty response." in str(caught.value)
    assert "Fix the row or remove it." in str(caught.value)


def test_prompt_only_rows_load_for_prompt_stages_only(tmp_path: Path) -> None:
    rows = [{"instruction": "q", "input": "x"}, {"instruction": "r", "output": "1"}]
    data = write_dataset(tmp_path, rows)
    first, second = load(data, "prompt")
    assert [m.role for m in first.messages] == ["user"] and first.messages[0].content == "q\nx"
    assert NO_ANSWER not in first.extra
    assert [m.role for m in second.messages] == ["user", "assistant"]
    with pytest.raises(DataError, match=r"row 1: output: missing column 'output' \(the response\)"):
        load(data)
    data = write_dataset(
        tmp_path, [{"conversations": [{"from": "human", "value": "a"}]}], {"formatting": "sharegpt"}
    )
    (only,) = load(data, "prompt")
    assert [m.role for m in only.messages] == ["user"]
    with pytest.raises(DataError, match="row 1: conversations: the conversation ends with a 'human' turn"):
        load(data)


def test_many_bad_rows_are_reported_together(tmp_path: Path) -> None:
    rows = [{"instruction": f"q{i}", "output": ""} for i in range(25)]
    data = write_dataset(tmp_path, "\n".join(json.dumps(r) for r in rows), name="d.jsonl")
    with pytest.raises(DataError) as caught:
        load(data)
    message = str(caught.value)
    assert message.startswith("25 malformed row(s):")
    assert "d.jsonl: row 20: output: empty response." in message
    assert "row 21:" not in message
    assert "... and 5 more" in message


def test_conversation_dataset_for_text_stage(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, [{"conversations": []}], {"formatting": "sharegpt"})
    with pytest.raises(
        DataError, match="formatting 'sharegpt', which gives conversation samples, but this stage needs text"
    ):
        load(data, produces="text")


def test_text_dataset_for_conversation_stage(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, [{"text": "x"}], {"formatting": "text"})
    with pytest.raises(DataError, match="gives text samples, but this stage needs conversation samples"):
        load(data)


def test_unknown_formatting(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, [{"text": "x"}], {"formatting": "alpacca"})
    with pytest.raises(DataError, match="dataset 'd': formatting: unknown dataset format 'alpacca'"):
        load(data)


def test_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset 'd' has no rows"):
        load(write_dataset(tmp_path, []))


def test_every_bad_entry_and_unknown_dataset_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text("[]")
    (tmp_path / "dataset_info.json").write_text(
        json.dumps(
            {
                "a": {"file_name": "rows.json", "colums": {}},
                "b": {"file_name": "rows.json", "ranking": "yes"},
                "c": {"hf_hub_url": "org/data"},
            }
        )
    )
    with pytest.raises(DataError) as error:
        load_dataset_info(tmp_path)
    message = str(error.value)
    assert message.startswith("3 problems:") and "'colums'" in message and "'ranking'" in message
    assert "hf_hub_url" in message
    with pytest.raises(DataError) as error:
        resolve_datasets(["zzz", "identityy"], tmp_path / "elsewhere")
    assert "unknown dataset 'zzz'" in str(error.value) and "unknown dataset 'identityy'" in str(error.value)
