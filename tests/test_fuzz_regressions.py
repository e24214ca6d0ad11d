"""Regression tests of the tracebacks the property tests (tests/test_fuzz_*.py) found: each input now gets exit 2
with a message naming the file, key or row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ft_core.cli import main
from ft_core.testing.fuzz import run_cli


def test_a_config_nested_too_deeply_names_the_key(make_config):
    path = make_config(training={"max_steps": "PLACEHOLDER"})
    path.write_text(path.read_text().replace("PLACEHOLDER", "[" * 300 + "]" * 300))
    result = run_cli(main, ["validate", str(path)])
    result.check(str(path))
    assert result.status == 2 and "levels deep" in result.stderr
    path.write_text(path.read_text().replace("[" * 300 + "]" * 300, "[" * 40 + "1" + "]" * 40))
    result = run_cli(main, ["validate", str(path)])
    assert result.status == 2 and "training.max_steps[0]" in result.stderr and "levels deep" in result.stderr


@pytest.mark.parametrize(
    "override", ["model.name_or_path=[", "data.cutoff_len=*alias", "a.b='", "x=" + "[" * 300]
)
def test_an_override_that_is_not_yaml_is_refused(make_config, override):
    result = run_cli(main, ["validate", str(make_config()), override])
    result.check("command line")
    assert result.status == 2


def test_a_config_that_is_not_utf8_is_refused(make_config):
    path = make_config()
    path.write_bytes(path.read_bytes() + b"\nx: \xff\xfe\n")
    result = run_cli(main, ["validate", str(path)])
    assert result.status == 2 and "not UTF-8" in result.stderr and str(path) in result.stderr


@pytest.mark.parametrize("include", ["\x00", "x" * 300])
def test_an_include_that_is_no_usable_path_is_refused(make_config, include):
    path = make_config()
    path.write_text(yaml.safe_dump({"include": include, **yaml.safe_load(path.read_text())}))
    result = run_cli(main, ["validate", str(path)])
    result.check(str(path))
    assert result.status == 2 and "not a usable path" in result.stderr


@pytest.mark.parametrize(
    ("section", "key", "value", "says"),
    [
        ("model", "adapters", ["x" * 300], "file systems take at most 255"),
        ("data", "dataset_dir", "a\x00b", "null byte"),
        ("training", "output_dir", "x/" * 3000, "file systems take at most 4095"),
        ("model", "name_or_path", "~nobody-here/x", "no such user's home folder"),
    ],
)
def test_path_keys_no_file_system_takes_are_refused_before_any_rule(make_config, section, key, value, says):
    result = run_cli(main, ["validate", str(make_config(**{section: {key: value}}))])
    assert result.status == 2 and f"{section}.{key}: " in result.stderr and says in result.stderr


def _dataset(tmp_path: Path, file_name: str, content: bytes | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": file_name}}))
    if content is not None:
        (folder / file_name).write_bytes(content)
    return folder


def test_a_dataset_file_name_too_long_is_not_found(make_config, tmp_path):
    folder = _dataset(tmp_path, "x" * 1000)
    result = run_cli(
        main, ["validate", str(make_config(data={"dataset": ["mine"], "dataset_dir": str(folder)}))]
    )
    assert result.status == 2 and "dataset_info.json: dataset 'mine': file_name" in result.stderr


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("rows.json", b"[" * 100_000 + b"]" * 100_000),
        ("rows.jsonl", b'{"instruction": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
        ("rows.json", b'[{"instruction": "a", "output": ' + b"9" * 5000 + b"}]"),
    ],
)
def test_json_rows_too_deep_or_too_long_to_read_name_the_file(make_config, tmp_path, name, content):
    folder = _dataset(tmp_path, name, content)
    result = run_cli(
        main, ["validate", str(make_config(data={"dataset": ["mine"], "dataset_dir": str(folder)}))]
    )
    assert result.status == 2 and f"{name}: " in result.stderr and "unreadable JSON" in result.stderr


def test_an_image_path_too_long_for_the_file_system_names_the_row(make_config, tmp_path):
    row = {"messages": [{"role": "user", "content": "<image>hi"}, {"role": "assistant", "content": "yo"}]}
    folder = _dataset(tmp_path, "rows.json", json.dumps([{**row, "images": ["x" * 1000]}]).encode())
    info = json.loads((folder / "dataset_info.json").read_text())
    info["mine"].update(formatting="sharegpt", columns={"messages": "messages", "images": "images"})
    info["mine"]["tags"] = {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
    }
    (folder / "dataset_info.json").write_text(json.dumps(info))
    result = run_cli(
        main, ["validate", str(make_config(data={"dataset": ["mine"], "dataset_dir": str(folder)}))]
    )
    assert result.status == 2 and "rows.json: row 1: images: image 1: no such file" in result.stderr


def test_a_tokenizer_that_cannot_load_is_reported_once_under_its_key(make_config):
    """Rules after a skipped rule are skipped too: the template rules never reload a tokenizer that failed."""
    path = make_config(model={"tokenizer": "/dev/null"})
    result = run_cli(main, ["validate", str(path)])
    result.check(str(path), "model.tokenizer")
    assert result.status == 2
    assert "model.tokenizer: " in result.stderr and "(rule inputs.tokenizer)" in result.stderr
    assert "rule inputs.tool_rows" not in result.stderr


def test_a_component_check_failing_on_a_path_is_that_sections_problem(make_config, monkeypatch):
    """The safety net of Component.validate: an OSError of a plugin's path check is reported, not a traceback."""
    from ft_core_lora.adapter import LoraAdapter

    def validate(self, options, config):
        raise OSError(36, "File name too long", "x" * 300)

    monkeypatch.setattr(LoraAdapter, "validate", validate)
    path = make_config()
    result = run_cli(main, ["validate", str(path)])
    result.check(str(path), "adapter (lora)")
    assert result.status == 2
    assert "adapter (lora): a path in its options cannot be used: File name too long" in result.stderr
