"""The data keys that came with LLaMA-Factory's data arguments: mix_strategy / interleave_probs, streaming /
buffer_size, tokenized_path, eval_on_each_dataset, media_dir, tool_format, image_max_pixels / image_min_pixels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ft_core.api.config import DataSection
from ft_core.api.conversation import Conversation
from ft_core.api.errors import FtCoreError
from ft_core.bootstrap import load_plugins
from ft_core.cli import main
from ft_core.engine.config.data_rules import TOOL_FORMATS
from ft_core.engine.data.formats import ShareGptFormat
from ft_core.engine.data.loader import load_samples
from ft_core.engine.data.mixing import mix
from ft_core.engine.run.runner import load_and_validate, run_training
from ft_core.engine.vision.processor import fit_pixels

A, B = ["a0", "a1", "a2"], ["b0", "b1", "b2", "b3", "b4"]


# ----------------------------------------------------------------------------------------------- mixing
def test_mix_strategies_follow_interleave_datasets() -> None:
    assert mix([A, B], "concat", None, 0) == A + B
    # a row of each in turn, until the shorter runs out / until both have (the shorter starts again)
    assert mix([A, B], "interleave_under", None, 0) == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert mix([A, B], "interleave_over", None, 0) == [
        "a0",
        "b0",
        "a1",
        "b1",
        "a2",
        "b2",
        "a0",
        "b3",
        "a1",
        "b4",
    ]
    drawn = mix([A, B], "interleave_under", [0.2, 0.8], 7)
    assert drawn == mix([A, B], "interleave_under", [0.2, 0.8], 7)  # seeded
    assert sum(row.startswith("b") for row in drawn) > sum(row.startswith("a") for row in drawn)
    assert mix([A], "interleave_over", None, 0) == A


def _problems(make_config: Any, **data: Any) -> str:
    with pytest.raises(FtCoreError) as caught:
        load_and_validate(str(make_config(data=data)), [], load_plugins())
    return str(caught.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"interleave_probs": [0.5, 0.5]}, "only used when interleaving"),
        ({"mix_strategy": "interleave_under", "interleave_probs": [0.5]}, "1 probabilities for 2 datasets"),
        ({"mix_strategy": "interleave_over", "interleave_probs": [0.5, 0.6]}, "must add up to 1"),
        ({"streaming": True, "packing": True}, "packing batches rows by their lengths"),
        ({"streaming": True, "val_size": 0.1}, "val_size splits a known set of rows"),
        ({"buffer_size": 0}, "data.buffer_size: must be >= 1"),
        ({"eval_on_each_dataset": True}, "name the evaluation datasets there"),
        ({"media_dir": "no/such/folder"}, "data.media_dir: no such folder"),
        ({"tool_format": "hermes"}, "unknown tool format 'hermes'"),
        ({"image_min_pixels": 100, "image_max_pixels": 10}, "is above data.image_max_pixels"),
    ],
)
def test_inconsistent_data_options_are_refused_at_validation(make_config, data, expected) -> None:
    data = {"dataset": ["identity", "alpaca_en_demo"], **data}
    assert expected in _problems(make_config, **data)


def test_streaming_needs_max_steps(make_config, tmp_path) -> None:
    path = make_config(
        data={"streaming": True}, training={"output_dir": str(tmp_path / "run"), "max_steps": -1}
    )
    with pytest.raises(FtCoreError, match=r"needs training\.max_steps > 0"):
        load_and_validate(str(path), [], load_plugins())


def test_tool_format_must_be_the_templates_own(make_config) -> None:
    path = make_config(data={"tool_format": "llama3"}, template={"name": "qwen"})
    with pytest.raises(FtCoreError, match=r"templates llama3\.1, llama3\.2 render it"):
        load_and_validate(str(path), [], load_plugins())
    registered = set(load_plugins().names("chat_template"))
    assert {name for names in TOOL_FORMATS.values() for name in names} <= registered


# ------------------------------------------------------------------------------------------- runs
def _train(path: Path, overrides: list[str] | None = None) -> Path:
    plugins = load_plugins()
    return run_training(load_and_validate(str(path), overrides or [], plugins), plugins)


def test_eval_on_each_dataset_reports_metrics_per_dataset(make_config) -> None:
    path = make_config(
        data={"eval_dataset": ["identity", "alpaca_en_demo"], "eval_on_each_dataset": True, "max_samples": 8},
        training={"eval_steps": 2, "eval_strategy": "steps"},
    )
    run = _train(path)
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    keys = {key for entry in history for key in entry}
    assert {"eval_identity_loss", "eval_alpaca_en_demo_loss"} <= keys


def test_streaming_trains_for_max_steps_with_interleaved_sets(make_config, capsys) -> None:
    path = make_config(
        data={
            "dataset": ["identity", "alpaca_en_demo"],
            "streaming": True,
            "buffer_size": 8,
            "mix_strategy": "interleave_under",
            "interleave_probs": [0.5, 0.5],
        }
    )
    run = _train(path)
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert "data.streaming" in manifest["decisions"]["packing"]["reason"]
    assert "training rows: streamed" in capsys.readouterr().err


def test_tokenized_path_saves_then_reuses_the_prepared_data(make_config, tmp_path, capsys) -> None:
    folder = tmp_path / "prepared"
    path = make_config(data={"tokenized_path": str(folder), "val_size": 0.1})
    assert main(["prepare", str(path)]) == 0
    first = capsys.readouterr().out
    assert "samples/s" in first and (folder / "train").is_dir() and (folder / "eval").is_dir()
    assert main(["prepare", str(path), "data.cutoff_len=128"]) == 0
    second = capsys.readouterr()
    assert "(cache)" in second.out  # the folder is used as it is (LLaMA-Factory semantics) ...
    assert (
        "prepared with different settings (changed: encoder, options)" in second.err
    )  # ... saying what differs
    _train(path)  # a run reads the same folder


def test_image_paths_resolve_against_media_dir(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "img").mkdir(parents=True)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(media / "img" / "red.png")
    (tmp_path / "d.json").write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "<image>Colour?"},
                        {"from": "gpt", "value": "red"},
                    ],
                    "images": ["img/red.png"],
                }
            ]
        )
    )
    info = {
        "d": {
            "file_name": "d.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
        }
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))

    class Formats:
        def get(self, kind: str, name: str) -> Any:
            return ShareGptFormat()

    data = DataSection(dataset=["d"], dataset_dir=str(tmp_path), media_dir=str(media))
    (sample,) = load_samples(["d"], data, Formats(), "conversation", seed=0)
    assert isinstance(sample, Conversation)
    assert sample.images == [str(media / "img" / "red.png")]


def test_images_are_scaled_into_the_pixel_range() -> None:
    big = fit_pixels(Image.new("RGB", (2000, 1000)), 768 * 768, 32 * 32)
    assert big.width * big.height <= 768 * 768 and abs(big.width / big.height - 2) < 0.01
    small = fit_pixels(Image.new("RGB", (10, 5)), 768 * 768, 32 * 32)
    assert small.width * small.height >= 30 * 30 and small.size == (45, 22)
    same = Image.new("RGB", (100, 100))
    assert fit_pixels(same, 768 * 768, 32 * 32) is same


def test_tool_format_names_map_to_templates() -> None:
    from ft_core.engine.config.data_rules import tool_format_problem

    assert tool_format_problem("qwen", "qwen3") is None
    assert tool_format_problem(None, "anything") is None
    assert "no ft-core template renders it" in str(tool_format_problem("default", "qwen"))


def test_a_stream_reads_lazily_and_names_a_bad_row(tmp_path: Path, tiny_tokenizer: Any) -> None:
    from ft_core.api.errors import DataError
    from ft_core.engine.data.formats import AlpacaFormat
    from ft_core.engine.data.registry import resolve_datasets
    from ft_core.engine.data.streaming import StreamJob, stream_rows
    from ft_core.testing import make_encoder
    from ft_core_sft.stage import SftStage

    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(100)] + [
        {"instruction": "", "output": 3}
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json"}}))
    (spec,) = resolve_datasets(["d"], tmp_path)
    encoder = make_encoder(tiny_tokenizer, cutoff_len=64)
    job = StreamJob(spec, AlpacaFormat(), SftStage(), None, encoder, "conversation", None)
    stream = stream_rows(job)
    assert len([next(stream) for _ in range(64)]) == 64  # the first chunk, before the bad row is read
    with pytest.raises(DataError, match=r"d\.json: row 101: "):
        list(stream)
