"""The pt stage: packing, preprocessing through the run's encoder, the collator and a whole run."""

import json
import pickle
from types import SimpleNamespace

import pytest

import ft_core_pt
from ft_core.api import IGNORE_INDEX, Encoder
from ft_core.testing.import_light import check_import_light
from ft_core_pt.stage import PtOptions, PtStage, pack


class _TextEncoder(Encoder):
    """``encode_text`` as the API documents it: the tokenizer's ids (BOS as it adds it) and EOS appended."""

    def __init__(self, tokenizer, cutoff_len):
        self.tokenizer, self.cutoff_len = tokenizer, cutoff_len

    def encode_text(self, texts):
        return [[*ids, self.tokenizer.eos_token_id] for ids in self.tokenizer(list(texts))["input_ids"]]

    def encode_conversation(self, conversation):
        raise AssertionError("pt encodes plain text only")

    def encode_completion(self, conversation, answer=None):
        raise AssertionError("pt encodes plain text only")

    def encode_prompt(self, messages, tools=None):
        raise AssertionError("pt encodes plain text only")


def test_registers_the_pt_stage_with_options(make_plugins):
    stage = make_plugins(ft_core_pt).get("stage", "pt")
    assert isinstance(stage, PtStage)
    assert stage.data_kind == "text"
    assert stage.options_schema is PtOptions


def test_pack_keeps_every_token_in_order():
    assert pack([[1, 2, 3], [4, 5], [6]], 4) == [[1, 2, 3, 4], [5, 6]]


def test_documents_end_with_eos_and_labels_equal_inputs(tiny_tokenizer, capsys):
    docs = ["The quick brown fox jumps over the lazy dog. " * 3, "hello world"]
    encoder = _TextEncoder(tiny_tokenizer, 16)
    packed = PtStage().preprocess(docs, encoder, PtOptions(packing=True))
    assert all(len(row["input_ids"]) <= 16 for row in packed)
    assert all(len(row["input_ids"]) == 16 for row in packed[:-1]), "packed blocks are full but the last"
    assert all(row["labels"] == row["input_ids"] for row in packed)
    assert all(row["attention_mask"] == [1] * len(row["input_ids"]) for row in packed)
    stream = [t for row in packed for t in row["input_ids"]]
    assert stream == [t for document in encoder.encode_text(docs) for t in document]
    assert stream.count(tiny_tokenizer.eos_token_id) == 2
    unpacked = PtStage().preprocess(docs, encoder, PtOptions(packing=False))
    assert len(unpacked) == 2 and unpacked[1]["input_ids"][-1] == tiny_tokenizer.eos_token_id
    assert len(unpacked[0]["input_ids"]) == 16, "an unpacked document is truncated to cutoff_len"
    assert capsys.readouterr() == ("", "")


def test_rows_of_a_single_token_are_dropped(tiny_tokenizer):
    # A document of N tokens in blocks of N - 1: the 1-token remainder has nothing to predict.
    text = "a b c d e f g h i j k l m n o p q r s t u v w x y z"
    encoder = _TextEncoder(tiny_tokenizer, 16)
    (document,) = encoder.encode_text([text])
    encoder.cutoff_len = len(document) - 1
    rows = PtStage().preprocess([text], encoder, PtOptions())
    assert [len(r["input_ids"]) for r in rows] == [len(document) - 1]


def test_stage_and_options_pickle():
    stage, options = pickle.loads(pickle.dumps((PtStage(), PtOptions(packing=False))))
    assert isinstance(stage, PtStage) and options == PtOptions(packing=False)


def _run(tokenizer, uses_gpu):
    return SimpleNamespace(tokenizer=tokenizer, uses_gpu=uses_gpu)


def test_collator_pads_labels_with_ignore_index(tiny_tokenizer):
    batch = PtStage().collator(_run(tiny_tokenizer, False))(
        [
            {"input_ids": [5, 6, 7], "labels": [5, 6, 7], "attention_mask": [1, 1, 1]},
            {"input_ids": [8, 9], "labels": [8, 9], "attention_mask": [1, 1]},
        ]
    )
    assert batch["input_ids"].shape == (2, 3)
    assert batch["labels"][1].tolist().count(IGNORE_INDEX) == 1


@pytest.mark.parametrize(("uses_gpu", "multiple"), [(False, None), (True, 8)])
def test_collator_pads_to_a_multiple_of_8_on_gpu_runs_only(tiny_tokenizer, uses_gpu, multiple):
    assert PtStage().collator(_run(tiny_tokenizer, uses_gpu)).pad_to_multiple_of == multiple


def test_a_run_trains_on_text_with_the_default_trainer(tmp_path, make_config):
    from ft_core.cli import main

    path = make_config(
        stage={"name": "pt", "packing": True},
        data={"dataset": ["c4_demo"], "cutoff_len": 32},
        training={"learning_rate": 1e-4, "plot_loss": False},
    )
    assert main(["run", str(path)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed"
    assert json.loads((run / "train_results.json").read_text())["train_loss"] > 0
    assert (run / "model" / "adapter_model.safetensors").is_file()


def test_registration_is_import_light():
    check_import_light("ft_core_pt")


@pytest.mark.parametrize("packing", [True, False])
def test_stage_conformance(tiny_tokenizer, packing):
    from ft_core.testing import make_encoder
    from ft_core.testing.conformance_stages import check_stage

    texts = [f"Document {i}: the quick brown fox jumps over the lazy dog." for i in range(6)]
    encoder = make_encoder(tiny_tokenizer, jinja="", cutoff_len=32)
    rows = check_stage(PtStage(), PtOptions(packing=packing), encoder, texts, chunk_invariant=not packing)
    assert all(len(row["input_ids"]) <= 32 for row in rows)
