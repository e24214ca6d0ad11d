"""The ppo stage without a run: registration, options, validation and preprocessing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import ft_core_ppo
from ft_core.api import Conversation, DataError, Message, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_ppo.stage import PpoOptions, PpoStage, prompt_and_answer


def config(
    cutoff_len: int = 128, batch_size: int = 4, accumulation: int = 1, val_size: float = 0
) -> SimpleNamespace:
    return SimpleNamespace(
        data=SimpleNamespace(cutoff_len=cutoff_len, val_size=val_size),
        training=SimpleNamespace(
            per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation
        ),
    )


def rm_folder(tmp_path: Path, status: str = "completed", task_type: str = "SEQ_CLS") -> Path:
    folder = tmp_path / "rm"
    (folder / "model").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"status": status, "artefact": "model"}))
    (folder / "model" / "adapter_config.json").write_text(json.dumps({"task_type": task_type}))
    return folder


def test_registers_the_ppo_stage_with_its_roles(make_plugins):
    stage = make_plugins(ft_core_ppo).get("stage", "ppo")
    assert isinstance(stage, PpoStage) and stage.data_kind == "prompt"
    roles = {role.name: role for role in stage.roles(PpoOptions(reward_model="exact_match"))}
    assert roles["policy"].trainable and roles["policy"].head_modules == ("v_head",)
    assert not roles["reference"].trainable and roles["reference"].head == "causal_lm"
    assert not roles["reward"].trainable and roles["reward"].head == "sequence_classification"


def test_registration_is_import_light():
    check_import_light("ft_core_ppo")


def test_reward_model_is_reward_functions_or_an_rm_run_folder():
    assert PpoOptions(reward_model="exact_match").reward_functions == ["exact_match"]
    assert PpoOptions(reward_model="exact_match").reward_model_dir is None
    assert PpoOptions(reward_model=["format", "my.mod:f"]).reward_functions == ["format", "my.mod:f"]
    options = PpoOptions(reward_model="runs/rm")
    assert options.reward_functions == [] and options.reward_model_dir == Path("runs/rm")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "reward_model: name the folder of a finished rm run"),
        ({"reward_model": ["exact_mach"]}, "Did you mean 'exact_match'"),
        ({"reward_model": "format", "reward_weights": [1.0, 2.0]}, "2 weights for 1 reward"),
        ({"reward_model": "runs/rm", "reward_weights": [1.0]}, "weights apply to reward functions only"),
        ({"reward_model": "format", "max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"reward_model": "format", "ppo_epochs": 0}, "ppo_epochs must be >= 1"),
        ({"reward_model": "format", "num_mini_batches": 0}, "num_mini_batches must be >= 1"),
        ({"reward_model": "format", "temperature": 0}, "temperature must be > 0"),
        ({"reward_model": "format", "cliprange": 0}, "cliprange must be > 0"),
        ({"reward_model": "format", "top_p": 1.5}, "top_p"),
        ({"reward_model": "format", "top_k": -1}, "top_k"),
        ({"reward_model": "format", "lam": 1.5}, "lam must be in"),
        ({"reward_model": "format", "init_kl_coef": -1}, "init_kl_coef must be >= 0"),
        ({"reward_model": "format", "target": 0}, "target must be > 0"),
        ({"reward_model": "format", "score_clip": 0}, "score_clip"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(OptionsError, match=message):
        PpoOptions(**options)


def test_validate_checks_cutoff_batches_accumulation_and_evaluation():
    stage, options = PpoStage(), PpoOptions(reward_model="exact_match")
    assert stage.validate(options, config()) == []
    assert (
        "max_new_tokens"
        in stage.validate(PpoOptions(reward_model="format", max_new_tokens=128), config(128))[0]
    )
    assert "gradient_accumulation_steps: must be 1" in stage.validate(options, config(accumulation=2))[0]
    problems = stage.validate(PpoOptions(reward_model="format", num_mini_batches=3), config(batch_size=4))
    assert "does not divide the rollout batch" in problems[0]
    assert "data.val_size" in stage.validate(options, config(val_size=0.1))[0]
    (problem,) = stage.validate(PpoOptions(reward_model="no_such_module_xyz:f"), config())
    assert "cannot import 'no_such_module_xyz'" in problem


def test_validate_checks_the_rm_run_folder(tmp_path):
    stage = PpoStage()
    (problem,) = stage.validate(PpoOptions(reward_model=str(tmp_path / "nowhere")), config())
    assert "is not a run folder (no manifest.json)" in problem
    (problem,) = stage.validate(PpoOptions(reward_model=str(rm_folder(tmp_path, status="failed"))), config())
    assert "has not completed" in problem
    (problem,) = stage.validate(
        PpoOptions(reward_model=str(rm_folder(tmp_path / "b", task_type="CAUSAL_LM"))), config()
    )
    assert "causal_lm head, not a reward model's" in problem
    assert stage.validate(PpoOptions(reward_model=str(rm_folder(tmp_path / "c"))), config()) == []
    (problem,) = stage.validate(PpoOptions(reward_model="x" * 300), config())
    assert (
        problem.startswith("stage.reward_model: ") and "is not a usable path (File name too long)" in problem
    )


def test_preprocess_reads_prompt_only_rows_and_rows_with_an_answer(encoder):
    enc = encoder()
    with_answer = Conversation([Message("user", "What is 2 plus 2?"), Message("assistant", "4")])
    prompt_only = Conversation([Message("system", "Be brief."), Message("user", "Hi")])
    first, second = PpoStage().preprocess([with_answer, prompt_only], enc, PpoOptions(reward_model="format"))
    assert first == {
        "prompt_ids": list(enc.encode_prompt([Message("user", "What is 2 plus 2?")])),
        "answer": "4",
    }
    assert (
        second["prompt_ids"] == list(enc.encode_prompt(list(prompt_only.messages))) and second["answer"] == ""
    )


def test_long_prompts_keep_their_end_within_cutoff_minus_new_tokens(encoder):
    enc = encoder(cutoff_len=24)
    options = PpoOptions(reward_model="format", max_new_tokens=8)
    (row,) = PpoStage().preprocess([Conversation([Message("user", "word " * 50)])], enc, options)
    assert len(row["prompt_ids"]) == 16


def test_a_row_without_a_prompt_is_an_error_naming_it():
    with pytest.raises(DataError, match=r"p\.json row 3: no prompt"):
        prompt_and_answer(Conversation([Message("system", "s")], source="p.json row 3"))
