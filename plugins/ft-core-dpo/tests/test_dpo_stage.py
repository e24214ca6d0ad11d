"""The dpo stage without a run: registration, options, preprocessing and batches."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

import ft_core_dpo
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.api.preference import fit_lengths, fit_pair, keep_prompt_end
from ft_core.testing.import_light import check_import_light
from ft_core_dpo.stage import LOSS_TYPES, DpoOptions, DpoStage


def pair(question: str, chosen: str, rejected: str, system: str | None = None, history=()) -> Conversation:
    messages = [Message("system", system)] if system else []
    for user, assistant in history:
        messages += [Message("user", user), Message("assistant", assistant)]
    messages += [Message("user", question), Message("assistant", chosen)]
    return Conversation(
        messages, source="test.json row 1", extra={"rejected": Message("assistant", rejected)}
    )


def test_registers_the_dpo_stage(make_plugins):
    stage = make_plugins(ft_core_dpo).get("stage", "dpo")
    assert isinstance(stage, DpoStage)
    assert stage.data_kind == "preference"
    assert stage.model_roles == ("policy", "reference")
    assert stage.options_schema is DpoOptions


def test_registration_is_import_light():
    check_import_light("ft_core_dpo")


# ----------------------------------------------------------------------------------------------------- options
def test_default_options_are_plain_dpo():
    arguments = DpoOptions().trl_arguments()
    assert arguments["beta"] == 0.1
    assert arguments["loss_type"] == ["sigmoid"] and arguments["loss_weights"] == [1.0]
    assert arguments["label_smoothing"] == 0.0
    assert arguments["max_length"] is None  # preprocess already cut the rows


def test_ftx_adds_a_weighted_sft_term_on_the_chosen_answers():
    arguments = DpoOptions(loss_type="ipo", beta=0.5, ftx=0.25).trl_arguments()
    assert arguments["loss_type"] == ["ipo", "sft"]
    assert arguments["loss_weights"] == [1.0, 0.25]
    assert arguments["beta"] == 0.5


def test_every_offered_loss_type_is_one_trl_computes():
    import inspect

    from trl import DPOTrainer

    source = inspect.getsource(DPOTrainer._compute_loss)
    missing = [t for t in LOSS_TYPES if f'loss_type == "{t}"' not in source]
    assert not missing, f"TRL's DPOTrainer does not compute {missing}"
    assert 'loss_type == "sft"' in source  # what ftx maps to


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(beta=0), "beta must be > 0"),
        (dict(beta=-0.1), "beta must be > 0"),
        (dict(loss_type="sigmod"), "Did you mean 'sigmoid'"),
        (dict(loss_type="sft"), "Use ftx"),
        (dict(ftx=-1.0), "ftx must be >= 0"),
        (dict(max_prompt_len=0), "max_prompt_len must be >= 1"),
        (dict(loss_type="hinge", label_smoothing=0.1), "has no effect with loss_type hinge"),
        (dict(label_smoothing=0.5), "in [0, 0.5) for loss_type sigmoid"),
        (dict(loss_type="robust", label_smoothing=0.5), "in [0, 0.5)"),
        (dict(loss_type="exo_pair"), "exo_pair needs label_smoothing in (0, 1)"),
    ],
)
def test_invalid_options_raise_options_error(options, message):
    with pytest.raises(OptionsError, match=re.escape(message)):
        DpoOptions(**options)


def test_label_smoothing_is_accepted_where_the_loss_uses_it():
    assert DpoOptions(label_smoothing=0.1).trl_arguments()["label_smoothing"] == 0.1  # conservative DPO
    assert DpoOptions(loss_type="robust", label_smoothing=0.1).trl_arguments()["label_smoothing"] == 0.1
    assert DpoOptions(loss_type="exo_pair", label_smoothing=1e-3).label_smoothing == 1e-3


def test_validate_rejects_a_prompt_budget_that_leaves_no_room_for_answers():
    config = SimpleNamespace(data=SimpleNamespace(cutoff_len=128))
    stage = DpoStage()
    assert stage.validate(DpoOptions(max_prompt_len=64), config) == []
    assert stage.validate(DpoOptions(), config) == []
    (problem,) = stage.validate(DpoOptions(max_prompt_len=128), config)
    assert problem.startswith("stage.max_prompt_len:") and "data.cutoff_len (128)" in problem


# -------------------------------------------------------------------------------------------------- truncation
@pytest.mark.parametrize(
    ("source", "target", "cutoff", "expected"),
    [
        (10, 5, 100, (10, 5)),  # fits: nothing cut
        (300, 20, 100, (80, 20)),  # short answer kept whole, prompt cut
        (20, 300, 100, (20, 80)),  # short prompt kept whole, answer cut
        (300, 100, 100, (75, 25)),  # both long: in proportion
    ],
)
def test_fit_lengths_follows_llamafactory(source, target, cutoff, expected):
    assert fit_lengths(source, target, cutoff) == expected
    assert sum(fit_lengths(source, target, cutoff)) <= cutoff


def test_fit_pair_keeps_prompt_end_and_answer_start_within_cutoff():
    prompt, chosen, rejected = list(range(100, 160)), list(range(10)), list(range(20, 24))
    fitted_prompt, fitted_chosen, fitted_rejected = fit_pair(prompt, chosen, rejected, cutoff_len=40)
    assert len(fitted_prompt) + len(fitted_chosen) <= 40
    assert len(fitted_prompt) + len(fitted_rejected) <= 40
    assert fitted_prompt == prompt[-30:]  # the question and the generation prompt survive
    assert fitted_chosen == chosen and fitted_rejected == rejected


def test_fit_pair_gives_both_answers_the_same_budget():
    prompt, chosen, rejected = list(range(30)), list(range(100, 200)), list(range(300, 330))
    fitted_prompt, fitted_chosen, fitted_rejected = fit_pair(prompt, chosen, rejected, cutoff_len=64)
    assert len(fitted_prompt) + max(len(fitted_chosen), len(fitted_rejected)) <= 64
    assert fitted_prompt == prompt  # short prompt kept whole
    assert fitted_chosen == chosen[: 64 - 30] and fitted_rejected == rejected  # answers keep their start


def test_fit_pair_keeps_a_leading_bos_and_honours_max_prompt_len():
    bos = 1
    prompt = [bos, *range(100, 150)]
    fitted_prompt, _, _ = fit_pair(prompt, [5, 6], [7], cutoff_len=1024, max_prompt_len=10, bos_token_id=bos)
    assert fitted_prompt == [bos, *range(141, 150)]
    assert keep_prompt_end([bos, 2, 3, 4], 2, bos) == [bos, 4]
    assert keep_prompt_end([9, 2, 3, 4], 2, bos) == [3, 4]


# ------------------------------------------------------------------------------------------------ preprocessing
def test_rows_are_exactly_the_chat_template_rendering(encoder, tiny_tokenizer):
    samples = [
        pair("What is the capital of France?", "Paris.", "London, I think."),
        pair(
            "And of Japan?",
            "Tokyo.",
            "I do not know.",
            system="You are a helpful assistant.",
            history=[("Hello world", "Hello! How can I help?")],
        ),
    ]
    rows = DpoStage().preprocess(samples, encoder(), DpoOptions())
    assert [sorted(row) for row in rows] == [["chosen_ids", "prompt_ids", "rejected_ids"]] * 2

    def rendered(messages: list[Message], generation_prompt: bool = False) -> list[int]:
        text = tiny_tokenizer.apply_chat_template(
            [m.to_hf() for m in messages], tokenize=False, add_generation_prompt=generation_prompt
        )
        return tiny_tokenizer(text, add_special_tokens=False)["input_ids"]

    for sample, row in zip(samples, rows, strict=True):
        head, rejected = sample.messages[:-1], sample.extra["rejected"]
        assert row["prompt_ids"] == rendered(head, generation_prompt=True)
        assert row["prompt_ids"] + row["chosen_ids"] == rendered(sample.messages)
        assert row["prompt_ids"] + row["rejected_ids"] == rendered([*head, rejected])
    im_end = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    # the answers end with the template's end-of-turn marker, which is trained too
    assert all(im_end in row["chosen_ids"] and im_end in row["rejected_ids"] for row in rows)
    assert tiny_tokenizer.decode(rows[0]["chosen_ids"]).startswith("Paris.")


def test_rows_are_cut_to_cutoff_len(encoder):
    long_question = "Write a poem about the quick brown fox. " * 20
    sample = pair(long_question, "The quick brown fox jumps over the lazy dog. " * 8, "No.")
    short = encoder(cutoff_len=48)
    full_prompt, full_chosen = short.encode_completion(sample)
    (row,) = DpoStage().preprocess([sample], short, DpoOptions())
    assert len(row["prompt_ids"]) + len(row["chosen_ids"]) <= 48
    assert len(row["prompt_ids"]) + len(row["rejected_ids"]) <= 48
    assert row["prompt_ids"] == full_prompt[-len(row["prompt_ids"]) :]  # ends with the generation prompt
    assert row["chosen_ids"] == full_chosen[: len(row["chosen_ids"])]
    (capped,) = DpoStage().preprocess([sample], encoder(), DpoOptions(max_prompt_len=12))
    assert capped["prompt_ids"] == full_prompt[-12:]


def test_pairs_without_a_difference_are_dropped(encoder):
    samples = [pair("Hello", "Same answer.", "Same answer."), pair("Hello", "Yes.", "No.")]
    rows = DpoStage().preprocess(samples, encoder(), DpoOptions())
    assert len(rows) == 1


def test_a_sample_without_rejected_answer_is_a_data_error(encoder):
    sample = Conversation([Message("user", "Hi"), Message("assistant", "Hello")], source="plain.json row 3")
    with pytest.raises(DataError, match=r"plain.json row 3: no rejected answer.*ranking: true"):
        DpoStage().preprocess([sample], encoder(), DpoOptions())


def test_stage_and_rows_pickle(encoder):
    import pickle

    rows = DpoStage().preprocess([pair("Hi", "Hello!", "Go away.")], encoder(), DpoOptions())
    assert pickle.loads(pickle.dumps((DpoStage(), DpoOptions(ftx=0.1), rows)))[2] == rows


def test_batches_mark_the_answers_as_completion(encoder, tiny_tokenizer):
    samples = [
        pair("What is the capital of France?", "Paris.", "It is Berlin, of course."),
        pair("Hi", "Hello!", "No."),
    ]
    rows = DpoStage().preprocess(samples, encoder(), DpoOptions())
    collator = DpoStage().collator(SimpleNamespace(tokenizer=tiny_tokenizer))
    batch = collator(rows)
    # chosen sequences first, then rejected ones, right-padded
    for index, row in enumerate(rows):
        for half, answer in ((0, row["chosen_ids"]), (1, row["rejected_ids"])):
            position = half * len(rows) + index
            length = len(row["prompt_ids"]) + len(answer)
            assert batch["input_ids"][position, :length].tolist() == row["prompt_ids"] + answer
            assert batch["attention_mask"][position].tolist() == [1] * length + [0] * (
                batch["input_ids"].shape[1] - length
            )
            mask = batch["completion_mask"][position].tolist()
            assert mask[len(row["prompt_ids"]) : length] == [1] * len(answer)
            assert sum(mask) == len(answer)
    assert batch["input_ids"][batch["attention_mask"] == 0].eq(tiny_tokenizer.pad_token_id).all()


def test_stage_conformance(encoder):
    from ft_core.testing.conformance_stages import check_stage

    samples = [pair(f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}, wrong.") for i in range(6)]
    rows = check_stage(DpoStage(), DpoOptions(), encoder(cutoff_len=64), samples)
    assert len(rows) == 6
