"""The kto stage without a run: registration, options, TRL version check, preprocessing and batches."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

import ft_core_kto
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_kto.compat import SUPPORTED_TRL, trl_problem
from ft_core_kto.stage import KtoOptions, KtoStage, fit_row


def row(question: str, answer: str, tag: object = True, system: str | None = None) -> Conversation:
    messages = [Message("system", system)] if system else []
    messages += [Message("user", question), Message("assistant", answer)]
    return Conversation(messages, source="kto.json row 1", extra={"kto_tag": tag})


def config(cutoff_len: int = 128, batch_size: int = 4) -> SimpleNamespace:
    return SimpleNamespace(
        data=SimpleNamespace(cutoff_len=cutoff_len),
        training=SimpleNamespace(per_device_train_batch_size=batch_size),
    )


def test_registers_the_kto_stage(make_plugins):
    stage = make_plugins(ft_core_kto).get("stage", "kto")
    assert isinstance(stage, KtoStage)
    assert stage.data_kind == "kto"
    assert stage.options_schema is KtoOptions
    roles = {role.name: role for role in stage.roles(KtoOptions())}
    assert roles["policy"].trainable and not roles["reference"].trainable


def test_registration_is_import_light():
    check_import_light("ft_core_kto")


# ----------------------------------------------------------------------------------------------------- options
def test_default_options_are_plain_kto():
    arguments = KtoOptions().trl_arguments()
    assert arguments["beta"] == 0.1 and arguments["loss_type"] == "kto"
    assert arguments["desirable_weight"] == 1.0 and arguments["undesirable_weight"] == 1.0
    assert arguments["max_length"] is None  # preprocess already cut the rows
    assert arguments["train_sampling_strategy"] == "sequential"  # TRL's KL pairs are batch neighbours


def test_every_offered_loss_type_is_one_trl_computes():
    import inspect

    from trl import KTOTrainer

    source = inspect.getsource(KTOTrainer._compute_loss)
    assert all(f'loss_type == "{t}"' in source for t in ("kto", "apo_zero_unpaired"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(beta=0), "beta must be > 0"),
        (dict(desirable_weight=0), "desirable_weight must be > 0"),
        (dict(undesirable_weight=-1.0), "undesirable_weight must be > 0"),
        (dict(loss_type="apo_zero"), "Did you mean 'apo_zero_unpaired'"),
        (dict(max_prompt_len=0), "max_prompt_len must be >= 1"),
    ],
)
def test_invalid_options_raise_options_error(options, message):
    with pytest.raises(OptionsError, match=re.escape(message)):
        KtoOptions(**options)


def test_validate_checks_prompt_budget_and_batch_size():
    stage = KtoStage()
    assert stage.validate(KtoOptions(max_prompt_len=64), config()) == []
    (problem,) = stage.validate(KtoOptions(max_prompt_len=128), config())
    assert problem.startswith("stage.max_prompt_len:") and "data.cutoff_len (128)" in problem
    (problem,) = stage.validate(KtoOptions(), config(batch_size=1))
    assert problem.startswith("training.per_device_train_batch_size:") and "at least 2" in problem
    assert stage.validate(KtoOptions(loss_type="apo_zero_unpaired"), config(batch_size=1)) == []


def test_unsupported_trl_versions_are_refused_with_the_supported_range():
    assert SUPPORTED_TRL == ">=1.16,<2"
    assert trl_problem("kto") is None  # the installed one
    assert trl_problem("kto", "1.16.0") is None and trl_problem("kto", "1.20.1") is None
    for old_or_new in ("1.12.0", "0.29.1", "2.0.0"):
        problem = trl_problem("kto", old_or_new)
        assert problem and f"TRL {old_or_new} is not supported" in problem and "trl>=1.16,<2" in problem


# ------------------------------------------------------------------------------------------------ preprocessing
def test_rows_are_exactly_the_chat_template_rendering(encoder, tiny_tokenizer):
    samples = [
        row("What is the capital of France?", "Paris.", True),
        row("And of Japan?", "I do not know.", False, system="You are a helpful assistant."),
    ]
    rows = KtoStage().preprocess(samples, encoder(), KtoOptions())
    assert [sorted(r) for r in rows] == [["completion_ids", "label", "prompt_ids"]] * 2
    assert [r["label"] for r in rows] == [True, False]
    for sample, r in zip(samples, rows, strict=True):
        messages = [m.to_hf() for m in sample.messages]
        prompt_text = tiny_tokenizer.apply_chat_template(
            messages[:-1], tokenize=False, add_generation_prompt=True
        )
        full_text = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
        assert r["prompt_ids"] == tiny_tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        assert (
            r["prompt_ids"] + r["completion_ids"]
            == tiny_tokenizer(full_text, add_special_tokens=False)["input_ids"]
        )
    im_end = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(im_end in r["completion_ids"] for r in rows)  # the end-of-turn marker is trained too


def test_rows_are_cut_to_cutoff_len(encoder):
    sample = row("Write a poem about the quick brown fox. " * 20, "The quick brown fox jumps. " * 8)
    short = encoder(cutoff_len=48)
    full_prompt, full_answer = short.encode_completion(sample)
    (r,) = KtoStage().preprocess([sample], short, KtoOptions())
    assert len(r["prompt_ids"]) + len(r["completion_ids"]) <= 48
    assert r["prompt_ids"] == full_prompt[-len(r["prompt_ids"]) :]  # ends with the generation prompt
    assert r["completion_ids"] == full_answer[: len(r["completion_ids"])]
    (capped,) = KtoStage().preprocess([sample], encoder(), KtoOptions(max_prompt_len=12))
    assert capped["prompt_ids"] == full_prompt[-12:]
    assert fit_row([1, *range(100, 150)], [5, 6], 1024, max_prompt_len=10, bos_token_id=1)[0] == [
        1,
        *range(141, 150),
    ]


@pytest.mark.parametrize("tag", ["true", 1, None, "yes"])
def test_a_tag_that_is_not_boolean_is_a_data_error_naming_the_row(encoder, tag):
    with pytest.raises(DataError, match=r"kto.json row 1: kto_tag must be true or false"):
        KtoStage().preprocess([row("Hi", "Hello", tag)], encoder(), KtoOptions())


def test_a_row_without_tag_is_a_data_error_naming_the_row(encoder):
    sample = Conversation([Message("user", "Hi"), Message("assistant", "Hello")], source="plain.json row 3")
    with pytest.raises(DataError, match=r"plain.json row 3: no kto_tag.*kto_tag"):
        KtoStage().preprocess([sample], encoder(), KtoOptions())


def test_the_loader_names_file_and_row_of_a_bad_tag(make_config, tmp_path):
    """The dataset loader already refuses a non-boolean tag column, naming the file and row."""
    import json

    from ft_core.api.errors import FtCoreError
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"instruction": "Hi", "output": "Hello", "label": True},
        {"instruction": "Hi", "output": "Go", "label": "no"},
    ]
    (data / "rows.json").write_text(json.dumps(rows))
    info = {
        "fb": {
            "file_name": "rows.json",
            "columns": {"prompt": "instruction", "response": "output", "kto_tag": "label"},
        }
    }
    (data / "dataset_info.json").write_text(json.dumps(info))
    path = make_config(stage={"name": "kto"}, data={"dataset": ["fb"], "dataset_dir": str(data)})
    plugins = load_plugins(extra=[(ft_core_kto, "ft-core-kto")])
    with pytest.raises(FtCoreError, match=r"rows.json.*row 2.*label.*true or false"):
        run_training(load_and_validate(str(path), [], plugins), plugins)


def test_stage_and_rows_pickle(encoder):
    import pickle

    rows = KtoStage().preprocess([row("Hi", "Hello!")], encoder(), KtoOptions())
    assert pickle.loads(pickle.dumps((KtoStage(), KtoOptions(beta=0.3), rows)))[2] == rows


def test_batches_hold_the_answers_and_the_kl_answers(encoder, tiny_tokenizer):
    from datasets import Dataset

    from ft_core_kto.trainer import add_kl_completions

    samples = [row(f"Question {i}?", f"Answer number {i}.", i % 2 == 0) for i in range(4)]
    rows = KtoStage().preprocess(samples, encoder(), KtoOptions())
    dataset = add_kl_completions(Dataset.from_list(rows), batch_size=2)
    kl = dataset["KL_completion_ids"]
    assert kl == [
        rows[1]["completion_ids"],
        rows[0]["completion_ids"],
        rows[3]["completion_ids"],
        rows[2]["completion_ids"],
    ]
    collator = KtoStage().collator(
        SimpleNamespace(tokenizer=tiny_tokenizer, config=SimpleNamespace(data=SimpleNamespace(cutoff_len=64)))
    )
    batch = collator(list(dataset))
    assert batch["label"].tolist() == [True, False, True, False]
    for index, r in enumerate(rows):
        length = len(r["prompt_ids"]) + len(r["completion_ids"])
        assert batch["input_ids"][index, :length].tolist() == r["prompt_ids"] + r["completion_ids"]
        assert batch["completion_mask"][index].sum() == len(r["completion_ids"])
        assert batch["KL_completion_mask"][index].sum() == len(kl[index])


def test_stage_conformance(encoder):
    from ft_core.testing.conformance_stages import check_stage

    samples = [row(f"Question {i}?", f"Answer {i}.", i % 3 != 0) for i in range(6)]
    rows = check_stage(KtoStage(), KtoOptions(), encoder(cutoff_len=64), samples)
    assert len(rows) == 6


def test_validate_refuses_an_unsupported_trl(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.12.0" if name == "trl" else real(name))
    (problem,) = KtoStage().validate(KtoOptions(), config())
    assert (
        problem.startswith("stage.name: stage kto: TRL 1.12.0 is not supported") and "trl>=1.16,<2" in problem
    )
