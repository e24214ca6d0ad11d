"""The sft stage: registration and tokenization through the run context."""

from types import SimpleNamespace

import ft_core_sft
from ft_core.data.conversation import Conversation, Message
from ft_core.testing.tiny import CHATML_JINJA


def test_registers_the_sft_stage(make_plugins):
    plugins = make_plugins(ft_core_sft)
    stage = plugins.get("stage", "sft")
    assert stage.data_kind == "conversation"


def _ctx(tokenizer, cutoff_len=64):
    config = SimpleNamespace(
        data=SimpleNamespace(cutoff_len=cutoff_len, train_on_prompt=False, mask_history=False),
        template=SimpleNamespace(system=None),
    )
    return SimpleNamespace(config=config, tokenizer=tokenizer, template=SimpleNamespace(jinja=CHATML_JINJA))


def test_tokenize_trains_only_answers_and_skips_rows_without_trainable_tokens(tiny_tokenizer, capsys):
    stage = ft_core_sft.SftStage()
    short = Conversation([Message("user", "Who are you?"), Message("assistant", "I am Nova.")])
    long_prompt = Conversation([Message("user", "hello world " * 40), Message("assistant", "Hi.")])
    rows = stage.tokenize(_ctx(tiny_tokenizer, cutoff_len=40), [short, long_prompt])
    assert len(rows) == 1
    trained = [t for t, label in zip(rows[0]["input_ids"], rows[0]["labels"], strict=True) if label != -100]
    assert tiny_tokenizer.decode(trained) == "I am Nova.<|im_end|>\n"
    assert "skipped 1 of 2 samples" in capsys.readouterr().err
