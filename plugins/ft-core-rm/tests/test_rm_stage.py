"""The rm stage without a run: registration, roles and heads, options, TRL version check, preprocessing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import ft_core_rm
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_rm.compat import SUPPORTED_TRL, trl_problem
from ft_core_rm.stage import RmOptions, RmStage, fit_pair


def pair(question: str, chosen: str, rejected: object = "No.") -> Conversation:
    extra = {"rejected": Message("assistant", rejected)} if isinstance(rejected, str) else {}
    return Conversation(
        [Message("user", question), Message("assistant", chosen)], source="pairs.json row 3", extra=extra
    )


def config(cutoff_len: int = 128) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(cutoff_len=cutoff_len))


def test_registers_the_rm_stage_with_a_sequence_classification_policy(make_plugins):
    stage = make_plugins(ft_core_rm).get("stage", "rm")
    assert isinstance(stage, RmStage)
    assert stage.data_kind == "preference"
    (role,) = stage.roles(RmOptions())
    assert role.name == "policy" and role.head == "sequence_classification" and role.trainable


def test_registration_is_import_light():
    check_import_light("ft_core_rm")


def test_options_are_checked():
    with pytest.raises(OptionsError, match="center_rewards_coefficient"):
        RmOptions(center_rewards_coefficient=-1.0)
    with pytest.raises(OptionsError, match="max_prompt_len"):
        RmOptions(max_prompt_len=0)
    assert RmOptions(center_rewards_coefficient=0.01).trl_arguments() == {
        "center_rewards_coefficient": 0.01,
        "max_length": None,
    }


def test_validate_refuses_an_unsupported_trl_and_a_prompt_limit_beyond_the_cutoff():
    stage = RmStage()
    assert stage.validate(RmOptions(), config()) == []
    assert "max_prompt_len" in stage.validate(RmOptions(max_prompt_len=128), config(128))[0]
    problem = trl_problem("rm", installed="1.12.0")
    assert problem is not None and SUPPORTED_TRL in problem and "1.12.0" in problem
    assert trl_problem("rm", installed="2.0.0") is not None
    assert trl_problem("rm", installed="1.16.1") is None


def test_preprocess_renders_prompt_plus_each_answer(encoder):
    enc = encoder()
    (row,) = RmStage().preprocess([pair("What is 2 plus 2?", "4.", "5.")], enc, RmOptions())
    prompt, chosen = enc.encode_completion(pair("What is 2 plus 2?", "4."))
    _, rejected = enc.encode_completion(pair("What is 2 plus 2?", "4."), Message("assistant", "5."))
    assert row == {"chosen_ids": prompt + chosen, "rejected_ids": prompt + rejected}


def test_preprocess_drops_identical_answers_and_names_the_row_of_bad_data(encoder):
    assert RmStage().preprocess([pair("Hi", "Same.", "Same.")], encoder(), RmOptions()) == []
    with pytest.raises(DataError, match=r"pairs.json row 3: no rejected answer"):
        RmStage().preprocess([pair("Hi", "Yes.", rejected=None)], encoder(), RmOptions())


def test_long_rows_fit_the_cutoff_keeping_the_prompt_end_and_the_bos():
    prompt, chosen, rejected = [1, *range(100, 140)], list(range(10)), list(range(20, 25))
    c, r = fit_pair(prompt, chosen, rejected, cutoff_len=30, bos_token_id=1)
    assert len(c) == 30 and len(r) == 25
    assert c[0] == 1 and c[20:] == chosen and r[20:] == rejected and c[19] == 139
    c, r = fit_pair(prompt, list(range(50)), rejected, cutoff_len=30, bos_token_id=1)
    # the prompt keeps half of the cutoff, the answer is cut
    assert len(c) == 30 and c[0] == 1 and c[15:] == list(range(15))
    c, _ = fit_pair(prompt, chosen, rejected, cutoff_len=64, max_prompt_len=5, bos_token_id=1)
    assert c[:5] == [1, 136, 137, 138, 139]


def test_next_steps_say_how_to_score_with_the_model():
    lines = RmStage().next_steps("runs/rm")
    assert any("load_trained_model('runs/rm')" in line for line in lines)
    assert any("AutoModelForSequenceClassification" in line for line in lines)
