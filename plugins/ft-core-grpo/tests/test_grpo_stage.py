"""The grpo stage without a run: registration, options, validation, reward functions and preprocessing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import ft_core_grpo
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.api.rewards import (
    build_reward_functions,
    exact_match,
    format_reward,
    is_callable_name,
    length_reward,
    normalize,
)
from ft_core.testing.import_light import check_import_light
from ft_core_grpo.compat import trl_problem
from ft_core_grpo.stage import GrpoOptions, GrpoStage, split_prompt


def config(cutoff_len: int = 128, batch_size: int = 4, accumulation: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        data=SimpleNamespace(cutoff_len=cutoff_len),
        training=SimpleNamespace(
            per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation
        ),
    )


def sample(question: str = "What is 2 plus 2?", answer: str = "4") -> Conversation:
    return Conversation(
        [Message("user", question), Message("assistant", answer)], source="prompts.json row 2"
    )


def test_registers_the_grpo_stage(make_plugins):
    stage = make_plugins(ft_core_grpo).get("stage", "grpo")
    assert isinstance(stage, GrpoStage)
    assert stage.data_kind == "prompt"
    roles = {role.name: role for role in stage.roles(GrpoOptions())}
    assert roles["policy"].trainable and roles["policy"].head == "causal_lm"
    assert not roles["reference"].trainable


def test_registration_is_import_light():
    check_import_light("ft_core_grpo")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reward_functions": []}, "at least one"),
        ({"reward_functions": ["exact_mach"]}, "Did you mean 'exact_match'"),
        ({"reward_functions": ["my module:f"]}, "package.module:function"),
        ({"reward_weights": [1.0, 2.0]}, "2 weights for 1 reward"),
        ({"num_generations": 1}, "num_generations"),
        ({"max_completion_length": 0}, "max_completion_length"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"beta": -0.1}, "beta"),
        ({"loss_type": "ppo"}, "loss_type"),
        ({"scale_rewards": "all"}, "scale_rewards"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(OptionsError, match=message):
        GrpoOptions(**options)


def test_trl_arguments_keep_the_answer_column():
    arguments = GrpoOptions(num_generations=8, beta=0.04).trl_arguments()
    assert arguments["num_generations"] == 8 and arguments["beta"] == 0.04
    assert arguments["remove_unused_columns"] is False


def test_validate_checks_batch_groups_cutoff_callables_and_trl():
    stage = GrpoStage()
    assert stage.validate(GrpoOptions(), config()) == []
    assert "multiple of it" in stage.validate(GrpoOptions(num_generations=3), config(batch_size=4))[0]
    assert stage.validate(GrpoOptions(num_generations=8), config(batch_size=4, accumulation=2)) == []
    assert "max_completion_length" in stage.validate(GrpoOptions(max_completion_length=128), config(128))[0]
    (problem,) = stage.validate(GrpoOptions(reward_functions=["no_such_module_xyz:f"]), config())
    assert "cannot import 'no_such_module_xyz'" in problem
    (problem,) = stage.validate(GrpoOptions(reward_functions=["json:no_such_function"]), config())
    assert "no callable 'no_such_function'" in problem
    assert trl_problem("grpo", installed="1.15.2") is not None
    assert trl_problem("grpo", installed="1.16.0") is None


def test_builtin_rewards_score_as_documented():
    assert normalize("  The  Answer. ") == "the answer"
    assert exact_match(["7", " 7.", "8", "seven"], answer=["7", "7", "7", "7"]) == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="no answer column"):
        exact_match(["7"])
    fmt = format_reward(r"<answer>\d+</answer>")
    assert fmt(["<answer>12</answer>", " <answer>3</answer>\n", "12", "<answer>x</answer>"]) == [1, 1, 0, 0]
    assert fmt.__name__ == "format"
    length = length_reward(10)
    assert length(["a" * 10, "", "a" * 5, "a" * 20]) == [1.0, 0.0, 0.5, 0.5]
    assert length([[{"role": "assistant", "content": "a" * 10}]]) == [1.0]  # conversational completions


def test_callable_names_resolve():
    assert is_callable_name("pkg.mod:func") and not is_callable_name("pkg.mod") and not is_callable_name(":f")
    (function,) = build_reward_functions(["os.path:basename"], "", 1)
    assert function("a/b") == "b"
    names = [f.__name__ for f in build_reward_functions(["exact_match", "format", "length"], "x", 3)]
    assert names == ["exact_match", "format", "length"]


def test_preprocess_keeps_the_rendered_prompt_and_the_answer(encoder):
    enc = encoder()
    (row,) = GrpoStage().preprocess([sample()], enc, GrpoOptions(max_completion_length=16))
    expected = enc.encode_prompt([Message("user", "What is 2 plus 2?")])
    assert row["prompt_ids"] == list(expected)
    assert row["answer"] == "4"
    assert enc.tokenizer(row["prompt"], add_special_tokens=False)["input_ids"] == row["prompt_ids"]


def test_long_prompts_keep_their_end_within_cutoff_minus_completion(encoder):
    enc = encoder(cutoff_len=24)
    (row,) = GrpoStage().preprocess([sample("word " * 50)], enc, GrpoOptions(max_completion_length=8))
    assert len(row["prompt_ids"]) == 16
    full = enc.encode_prompt([Message("user", "word " * 50)])
    assert row["prompt_ids"][-5:] == list(full)[-5:]


def test_a_row_without_an_answer_is_an_error_naming_it():
    with pytest.raises(DataError, match=r"prompts\.json row 2: no answer"):
        split_prompt(Conversation([Message("user", "Hi")], source="prompts.json row 2"))
