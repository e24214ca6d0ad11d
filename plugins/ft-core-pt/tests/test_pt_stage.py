"""The pt stage: packing and tokenization."""

from types import SimpleNamespace

import ft_core_pt
from ft_core_pt.stage import PtOptions, PtStage, pack


def test_registers_the_pt_stage_with_options(make_plugins):
    stage = make_plugins(ft_core_pt).get("stage", "pt")
    assert stage.data_kind == "text"
    assert stage.options_schema is PtOptions


def test_pack_keeps_every_token_in_order():
    assert pack([[1, 2, 3], [4, 5], [6]], 4) == [[1, 2, 3, 4], [5, 6]]


def _ctx(tokenizer, packing):
    config = SimpleNamespace(
        data=SimpleNamespace(cutoff_len=16), stage=SimpleNamespace(options=PtOptions(packing))
    )
    return SimpleNamespace(config=config, tokenizer=tokenizer)


def test_documents_end_with_eos_and_labels_equal_inputs(tiny_tokenizer):
    docs = ["The quick brown fox jumps over the lazy dog. " * 3, "hello world"]
    packed = PtStage().tokenize(_ctx(tiny_tokenizer, True), docs)
    assert all(len(row["input_ids"]) <= 16 for row in packed)
    assert all(row["labels"] == row["input_ids"] for row in packed)
    stream = [t for row in packed for t in row["input_ids"]]
    assert stream.count(tiny_tokenizer.eos_token_id) == 2
    unpacked = PtStage().tokenize(_ctx(tiny_tokenizer, False), docs)
    assert len(unpacked) == 2 and unpacked[1]["input_ids"][-1] == tiny_tokenizer.eos_token_id
