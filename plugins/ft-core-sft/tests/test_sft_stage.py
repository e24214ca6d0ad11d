"""The sft stage: registration, preprocessing through the run's encoder, the collator and a whole run."""

import json
import pickle
from types import SimpleNamespace

import pytest

import ft_core_sft
from ft_core.api import IGNORE_INDEX, Conversation, Encoder, Message, NoOptions
from ft_core.testing.import_light import check_import_light
from ft_core.testing.tiny import CHATML_JINJA
from ft_core_sft import SftStage


def _encoder(tokenizer, cutoff_len):
    """The run's encoder as the engine builds it (the stage only sees the ``ft_core.api.Encoder`` interface)."""
    from ft_core.engine.templates.encoder import TemplateEncoder

    return TemplateEncoder(tokenizer=tokenizer, jinja=CHATML_JINJA, cutoff_len=cutoff_len)


class _RecordingEncoder(Encoder):
    """Encodes every conversation to a fixed row, except those whose first message says ``drop``."""

    tokenizer = None
    cutoff_len = 8

    def __init__(self):
        self.seen = []

    def encode_conversation(self, conversation):
        self.seen.append(conversation)
        if conversation.messages[0].content == "drop":
            return None
        return {"input_ids": [1, 2], "labels": [IGNORE_INDEX, 2], "attention_mask": [1, 1]}

    def encode_completion(self, conversation, answer=None):
        raise AssertionError("sft does not use encode_completion")

    def encode_prompt(self, messages, tools=None):
        raise AssertionError("sft does not use encode_prompt")

    def encode_text(self, texts):
        raise AssertionError("sft does not use encode_text")


def _conversation(user, answer="ok"):
    return Conversation([Message("user", user), Message("assistant", answer)])


def test_registers_the_sft_stage(make_plugins):
    plugins = make_plugins(ft_core_sft)
    stage = plugins.get("stage", "sft")
    assert isinstance(stage, SftStage)
    assert stage.data_kind == "conversation" and stage.model_roles == ("policy",)


def test_preprocess_keeps_encoded_rows_in_order_and_drops_the_rest(capsys):
    encoder = _RecordingEncoder()
    samples = [_conversation("a"), _conversation("drop"), _conversation("b")]
    rows = SftStage().preprocess(samples, encoder, NoOptions())
    assert encoder.seen == samples
    assert len(rows) == 2 and rows[0]["labels"] == [IGNORE_INDEX, 2]
    assert capsys.readouterr() == ("", ""), "preprocess must not print: the engine reports dropped rows"


def test_preprocess_trains_only_answers_and_drops_rows_without_trainable_tokens(tiny_tokenizer):
    short = _conversation("Who are you?", "I am Nova.")
    # a short answer is kept whole (LLaMA-Factory's cut)
    long_prompt = _conversation("hello world " * 40, "Hi.")
    # a long prompt and a long answer share the 40 tokens in proportion: the answer's share rounds down to 0
    long_both = _conversation("hello world " * 200, "An answer of some length.")
    rows = SftStage().preprocess([short, long_prompt, long_both], _encoder(tiny_tokenizer, 40), NoOptions())
    assert len(rows) == 2
    for row, answer in zip(rows, ("I am Nova.", "Hi."), strict=True):
        trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        assert tiny_tokenizer.decode(trained) == f"{answer}<|im_end|>\n"


def test_stage_and_options_pickle():
    """preprocess runs in worker processes: the stage and its options travel by pickle."""
    stage, options = pickle.loads(pickle.dumps((SftStage(), NoOptions())))
    assert isinstance(stage, SftStage) and options == NoOptions()


def _run(tokenizer, uses_gpu):
    return SimpleNamespace(tokenizer=tokenizer, uses_gpu=uses_gpu)


def test_collator_pads_labels_with_ignore_index(tiny_tokenizer):
    collator = SftStage().collator(_run(tiny_tokenizer, False))
    batch = collator(
        [
            {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7], "attention_mask": [1, 1, 1]},
            {"input_ids": [5], "labels": [5], "attention_mask": [1]},
        ]
    )
    assert batch["input_ids"].shape == (2, 3)
    assert sorted(batch["labels"][1].tolist()) == [IGNORE_INDEX, IGNORE_INDEX, 5]
    assert batch["attention_mask"][1].tolist().count(1) == 1
    assert collator.pad_to_multiple_of is None


@pytest.mark.parametrize(("uses_gpu", "multiple"), [(False, None), (True, 8)])
def test_collator_pads_to_a_multiple_of_8_on_gpu_runs_only(tiny_tokenizer, uses_gpu, multiple):
    assert SftStage().collator(_run(tiny_tokenizer, uses_gpu)).pad_to_multiple_of == multiple


def test_a_run_trains_with_the_default_trainer(tmp_path, make_config):
    from ft_core.cli import main

    path = make_config(stage="sft", training={"learning_rate": 1e-4, "plot_loss": False})
    assert main(["run", str(path)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed"
    assert json.loads((run / "train_results.json").read_text())["train_loss"] > 0
    assert (run / "model" / "adapter_model.safetensors").is_file()


def test_registration_is_import_light():
    check_import_light("ft_core_sft")


def test_stage_conformance(tiny_tokenizer):
    from ft_core.testing import make_encoder
    from ft_core.testing.conformance_stages import check_stage

    samples = [
        Conversation([Message("user", f"Question {i}?"), Message("assistant", f"Answer number {i}.")])
        for i in range(6)
    ]
    rows = check_stage(SftStage(), NoOptions(), make_encoder(tiny_tokenizer, cutoff_len=64), samples)
    assert len(rows) == 6
