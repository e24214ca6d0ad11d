"""The orpo stage without a run: registration, options, TRL version check, preprocessing and batches."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

import ft_core_orpo
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_orpo.compat import SUPPORTED_TRL, trl_problem
from ft_core_orpo.stage import OrpoOptions, OrpoStage


def pair(question: str, chosen: str, rejected: str, system: str | None = None) -> Conversation:
    messages = [Message("system", system)] if system else []
    messages += [Message("user", question), Message("assistant", chosen)]
    return Conversation(
        messages, source="prefs.json row 1", extra={"rejected": Message("assistant", rejected)}
    )


def test_registers_the_orpo_stage(make_plugins):
    stage = make_plugins(ft_core_orpo).get("stage", "orpo")
    assert isinstance(stage, OrpoStage)
    assert stage.data_kind == "preference"
    assert [role.name for role in stage.roles(OrpoOptions())] == ["policy"]  # reference-free


def test_registration_is_import_light():
    check_import_light("ft_core_orpo")


def test_options_map_to_orpo_config():
    from ft_core_orpo.trainer import ORPOConfig

    assert OrpoOptions(beta=0.25).trl_arguments() == {"beta": 0.25, "max_length": None}
    assert OrpoStage().arguments_class() is ORPOConfig


@pytest.mark.parametrize(
    ("options", "message"),
    [(dict(beta=0), "beta must be > 0"), (dict(max_prompt_len=0), "max_prompt_len must be >= 1")],
)
def test_invalid_options_raise_options_error(options, message):
    with pytest.raises(OptionsError, match=re.escape(message)):
        OrpoOptions(**options)


def test_validate_rejects_a_prompt_budget_that_leaves_no_room_for_answers():
    config = SimpleNamespace(data=SimpleNamespace(cutoff_len=128))
    assert OrpoStage().validate(OrpoOptions(max_prompt_len=64), config) == []
    (problem,) = OrpoStage().validate(OrpoOptions(max_prompt_len=128), config)
    assert problem.startswith("stage.max_prompt_len:")


def test_unsupported_trl_versions_are_refused_with_the_supported_range():
    assert SUPPORTED_TRL == ">=1.16,<2"
    assert trl_problem("orpo") is None  # the installed one, which ships trl.experimental.orpo
    for version in ("1.12.0", "0.29.1", "2.0.0"):
        problem = trl_problem("orpo", version)
        assert problem and f"TRL {version} is not supported by ft-core-orpo" in problem


# ------------------------------------------------------------------------------------------------ preprocessing
def test_rows_are_exactly_the_chat_template_rendering(encoder, tiny_tokenizer):
    samples = [
        pair("What is the capital of France?", "Paris.", "London, I think."),
        pair("And of Japan?", "Tokyo.", "I do not know.", system="You are a helpful assistant."),
    ]
    rows = OrpoStage().preprocess(samples, encoder(), OrpoOptions())

    def rendered(messages: list[Message], generation_prompt: bool = False) -> list[int]:
        text = tiny_tokenizer.apply_chat_template(
            [m.to_hf() for m in messages], tokenize=False, add_generation_prompt=generation_prompt
        )
        return tiny_tokenizer(text, add_special_tokens=False)["input_ids"]

    for sample, row in zip(samples, rows, strict=True):
        head = sample.messages[:-1]
        assert row["prompt_ids"] == rendered(head, generation_prompt=True)
        assert row["prompt_ids"] + row["chosen_ids"] == rendered(sample.messages)
        assert row["prompt_ids"] + row["rejected_ids"] == rendered([*head, sample.extra["rejected"]])


def test_rows_are_cut_to_cutoff_len_and_pairs_without_difference_dropped(encoder):
    long = pair("Write a poem about the quick brown fox. " * 20, "The quick brown fox jumps. " * 8, "No.")
    same = pair("Hello", "Same answer.", "Same answer.")
    rows = OrpoStage().preprocess([long, same], encoder(cutoff_len=48), OrpoOptions())
    assert len(rows) == 1
    (row,) = rows
    assert len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= 48


def test_a_sample_without_rejected_answer_is_a_data_error(encoder):
    sample = Conversation([Message("user", "Hi"), Message("assistant", "Hello")], source="plain.json row 3")
    with pytest.raises(DataError, match=r"plain.json row 3: no rejected answer.*orpo stage.*ranking: true"):
        OrpoStage().preprocess([sample], encoder(), OrpoOptions())


@pytest.mark.parametrize(
    ("chosen", "rejected", "what"), [("  ", "No.", "empty chosen"), ("Yes.", "", "empty rejected")]
)
def test_an_empty_answer_is_a_data_error(encoder, chosen, rejected, what):
    with pytest.raises(DataError, match=rf"prefs.json row 1: {what} answer"):
        OrpoStage().preprocess([pair("Hi", chosen, rejected)], encoder(), OrpoOptions())


def test_the_loader_names_file_and_row_of_bad_pairs(make_config, tmp_path):
    """The dataset loader refuses a row without its rejected answer or with an empty chosen one, naming the file
    and the rows (all of them at once)."""
    import json

    from ft_core.api.errors import FtCoreError
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"instruction": "Hi", "chosen": "Hello", "rejected": "Go"},
        {"instruction": "Hi", "chosen": "Hello"},
        {"instruction": "Hi", "chosen": " ", "rejected": "Go"},
    ]
    (data / "prefs.json").write_text(json.dumps(rows))
    columns = {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}
    info = {"p": {"file_name": "prefs.json", "ranking": True, "columns": columns}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    path = make_config(stage={"name": "orpo"}, data={"dataset": ["p"], "dataset_dir": str(data)})
    plugins = load_plugins(extra=[(ft_core_orpo, "ft-core-orpo")])
    with pytest.raises(FtCoreError) as error:
        run_training(load_and_validate(str(path), [], plugins), plugins)
    message = str(error.value)
    assert "prefs.json" in message and "row 2" in message and "missing column 'rejected'" in message, message
    assert "row 3" in message and "empty chosen answer" in message, message


def test_batches_are_what_trl_tokenizes_to(encoder, tiny_tokenizer):
    samples = [
        pair("What is the capital of France?", "Paris.", "It is Berlin, of course."),
        pair("Hi", "Hello!", "No."),
    ]
    rows = OrpoStage().preprocess(samples, encoder(), OrpoOptions())
    batch = OrpoStage().collator(SimpleNamespace(tokenizer=tiny_tokenizer))(rows)
    pad = tiny_tokenizer.pad_token_id
    for index, row in enumerate(rows):
        for side in ("chosen", "rejected"):
            answer = row[f"{side}_ids"]
            length = len(row["prompt_ids"]) + len(answer)
            ids = batch[f"{side}_input_ids"][index].tolist()
            assert ids[:length] == row["prompt_ids"] + answer and set(ids[length:]) <= {pad}
            labels = batch[f"{side}_labels"][index].tolist()
            assert labels[:length] == [-100] * len(row["prompt_ids"]) + answer
            assert set(labels[length:]) <= {-100}
            assert batch[f"{side}_attention_mask"][index].sum() == length
        prompt = batch["prompt_input_ids"][index].tolist()
        assert prompt[len(prompt) - len(row["prompt_ids"]) :] == row["prompt_ids"]  # left-padded


def test_the_nll_term_covers_the_chosen_answer_only():
    import torch

    from ft_core_orpo.trainer import answer_nll

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)  # positions 0..4 of sequences of length 6
    labels = torch.tensor([[-100, -100, 3, 4, -100, -100], [-100, 7, 8, 9, 10, 1]])
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert torch.allclose(answer_nll(logits, labels), expected)
    assert torch.allclose(
        answer_nll(logits, labels[:, :4]),
        torch.nn.functional.cross_entropy(
            logits[:, :3].reshape(-1, 11), labels[:, 1:4].reshape(-1), ignore_index=-100
        ),
    )


def test_stage_conformance(encoder):
    from ft_core.testing.conformance_stages import check_stage

    samples = [pair(f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}, wrong.") for i in range(6)]
    assert len(check_stage(OrpoStage(), OrpoOptions(), encoder(cutoff_len=64), samples)) == 6


def test_validate_refuses_an_unsupported_trl(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.1.0" if name == "trl" else real(name))
    (problem,) = OrpoStage().validate(OrpoOptions(), SimpleNamespace(data=SimpleNamespace(cutoff_len=64)))
    assert (
        problem.startswith("stage.name: stage orpo: TRL 2.1.0 is not supported") and "trl>=1.16,<2" in problem
    )


def test_validate_refuses_a_trl_without_the_experimental_orpo_module(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.files
    monkeypatch.setattr(
        importlib.metadata,
        "files",
        lambda name: (
            [f for f in real(name) if "experimental/orpo" not in str(f)] if name == "trl" else real(name)
        ),
    )
    (problem,) = OrpoStage().validate(OrpoOptions(), SimpleNamespace(data=SimpleNamespace(cutoff_len=64)))
    assert "has no trl.experimental.orpo" in problem
