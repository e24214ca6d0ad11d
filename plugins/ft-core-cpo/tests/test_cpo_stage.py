"""The cpo and simpo stages without a run: registration, options, TRL version check, preprocessing and batches."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

import ft_core_cpo
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_cpo.compat import SUPPORTED_TRL, trl_problem
from ft_core_cpo.stage import CPO_LOSS_TYPES, CpoOptions, CpoStage, SimpoOptions, SimpoStage


def pair(question: str, chosen: str, rejected: str, system: str | None = None) -> Conversation:
    messages = [Message("system", system)] if system else []
    messages += [Message("user", question), Message("assistant", chosen)]
    return Conversation(
        messages, source="prefs.json row 1", extra={"rejected": Message("assistant", rejected)}
    )


def test_registers_the_cpo_and_simpo_stages(make_plugins):
    plugins = make_plugins(ft_core_cpo)
    cpo, simpo = plugins.get("stage", "cpo"), plugins.get("stage", "simpo")
    assert isinstance(cpo, CpoStage) and cpo.options_schema is CpoOptions
    assert isinstance(simpo, SimpoStage) and simpo.options_schema is SimpoOptions
    for stage, options in ((cpo, CpoOptions()), (simpo, SimpoOptions())):
        assert stage.data_kind == "preference"
        assert [role.name for role in stage.roles(options)] == ["policy"]  # reference-free


def test_registration_is_import_light():
    check_import_light("ft_core_cpo")


def test_simpo_is_trls_cpo_trainer_with_the_simpo_loss_and_no_bc_term():
    arguments = SimpoOptions().trl_arguments()
    assert arguments["loss_type"] == "simpo" and arguments["cpo_alpha"] == 0.0
    assert arguments["beta"] == 2.0 and arguments["simpo_gamma"] == 1.0
    assert SimpoOptions(ftx=0.5).trl_arguments()["cpo_alpha"] == 0.5
    from ft_core_cpo.trainer import CPOConfig

    config = CPOConfig(output_dir="/tmp/x", use_cpu=True, report_to="none", **arguments)
    assert (config.loss_type, config.cpo_alpha, config.simpo_gamma) == ("simpo", 0.0, 1.0)


def test_cpo_options_map_to_cpo_config():
    arguments = CpoOptions(loss_type="hinge", cpo_alpha=0.5).trl_arguments()
    assert arguments == {
        "loss_type": "hinge",
        "beta": 0.1,
        "cpo_alpha": 0.5,
        "label_smoothing": 0.0,
        "max_length": None,
    }


def test_every_offered_loss_type_is_one_trl_computes():
    import inspect

    from ft_core_cpo.trainer import CPOTrainer

    source = inspect.getsource(CPOTrainer.cpo_loss)
    assert all(f'loss_type == "{t}"' in source for t in (*CPO_LOSS_TYPES, "simpo"))


@pytest.mark.parametrize(
    ("schema", "options", "message"),
    [
        (CpoOptions, dict(beta=0), "beta must be > 0"),
        (CpoOptions, dict(loss_type="simpo"), "Use stage.name: simpo"),
        (CpoOptions, dict(loss_type="sigmod"), "Did you mean 'sigmoid'"),
        (CpoOptions, dict(cpo_alpha=-1), "cpo_alpha must be >= 0"),
        (CpoOptions, dict(loss_type="ipo", label_smoothing=0.1), "no effect with loss_type ipo"),
        (CpoOptions, dict(label_smoothing=0.5), "label_smoothing must be in [0, 0.5)"),
        (CpoOptions, dict(max_prompt_len=0), "max_prompt_len must be >= 1"),
        (SimpoOptions, dict(beta=-2), "beta must be > 0"),
        (SimpoOptions, dict(simpo_gamma=-0.1), "simpo_gamma must be >= 0"),
        (SimpoOptions, dict(ftx=-1), "ftx must be >= 0"),
    ],
)
def test_invalid_options_raise_options_error(schema, options, message):
    with pytest.raises(OptionsError, match=re.escape(message)):
        schema(**options)


def test_validate_rejects_a_prompt_budget_that_leaves_no_room_for_answers():
    config = SimpleNamespace(data=SimpleNamespace(cutoff_len=128))
    assert SimpoStage().validate(SimpoOptions(max_prompt_len=64), config) == []
    (problem,) = CpoStage().validate(CpoOptions(max_prompt_len=200), config)
    assert problem.startswith("stage.max_prompt_len:")


def test_unsupported_trl_versions_are_refused_with_the_supported_range():
    assert SUPPORTED_TRL == ">=1.16,<2"
    assert trl_problem("simpo") is None  # the installed one, which ships trl.experimental.cpo
    for version in ("1.12.0", "0.29.1", "2.0.0"):
        problem = trl_problem("simpo", version)
        assert problem and f"stage simpo: TRL {version} is not supported by ft-core-cpo" in problem


def test_rows_are_exactly_the_chat_template_rendering(encoder, tiny_tokenizer):
    samples = [
        pair("What is the capital of France?", "Paris.", "London, I think."),
        pair("And of Japan?", "Tokyo.", "I do not know.", system="You are a helpful assistant."),
    ]
    rows = SimpoStage().preprocess(samples, encoder(), SimpoOptions())

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


def test_rows_are_cut_to_cutoff_len(encoder):
    long = pair("Write a poem about the quick brown fox. " * 20, "The quick brown fox jumps. " * 8, "No.")
    (row,) = CpoStage().preprocess([long], encoder(cutoff_len=48), CpoOptions())
    assert len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= 48
    (capped,) = CpoStage().preprocess([long], encoder(), CpoOptions(max_prompt_len=12))
    assert len(capped["prompt_ids"]) == 12


def test_bad_pairs_are_data_errors_naming_the_row(encoder):
    plain = Conversation([Message("user", "Hi"), Message("assistant", "Hello")], source="plain.json row 3")
    with pytest.raises(DataError, match=r"plain.json row 3: no rejected answer.*simpo stage"):
        SimpoStage().preprocess([plain], encoder(), SimpoOptions())
    with pytest.raises(DataError, match=r"prefs.json row 1: empty chosen answer"):
        CpoStage().preprocess([pair("Hi", "", "No.")], encoder(), CpoOptions())


def test_batches_are_what_trl_tokenizes_to(encoder, tiny_tokenizer):
    rows = CpoStage().preprocess(
        [pair("Hi", "Hello!", "No."), pair("Why?", "Because.", "Dunno, really.")], encoder(), CpoOptions()
    )
    batch = CpoStage().collator(SimpleNamespace(tokenizer=tiny_tokenizer))(rows)
    for index, row in enumerate(rows):
        for side in ("chosen", "rejected"):
            answer = row[f"{side}_ids"]
            length = len(row["prompt_ids"]) + len(answer)
            assert batch[f"{side}_input_ids"][index, :length].tolist() == row["prompt_ids"] + answer
            assert (
                batch[f"{side}_labels"][index, :length].tolist() == [-100] * len(row["prompt_ids"]) + answer
            )
            assert batch[f"{side}_attention_mask"][index].sum() == length


@pytest.mark.parametrize(("stage", "options"), [(CpoStage(), CpoOptions()), (SimpoStage(), SimpoOptions())])
def test_stage_conformance(encoder, stage, options):
    from ft_core.testing.conformance_stages import check_stage

    samples = [pair(f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}, wrong.") for i in range(6)]
    assert len(check_stage(stage, options, encoder(cutoff_len=64), samples)) == 6


def test_validate_refuses_an_unsupported_trl(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.12.0" if name == "trl" else real(name))
    config = SimpleNamespace(data=SimpleNamespace(cutoff_len=64))
    (problem,) = SimpoStage().validate(SimpoOptions(), config)
    assert problem.startswith("stage.name: stage simpo: TRL 1.12.0 is not supported")
    (problem,) = CpoStage().validate(CpoOptions(), config)
    assert problem.startswith("stage.name: stage cpo: TRL 1.12.0")
