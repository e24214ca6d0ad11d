"""model.add_tokens / add_special_tokens / resize_vocab: the tokenizer gains the tokens, the embeddings grow, the new
rows train (LoRA: the embedding layers as modules_to_save) and are saved so chat loads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ft_core.api.config import ModelSection
from ft_core.bootstrap import load_plugins
from ft_core.engine.inference.target import resolve_chat_target
from ft_core.engine.run.runner import load_and_validate, run_training

ROWS = [{"instruction": f"Call <tool> number {i}", "output": f"<tool> done {i} </tool>"} for i in range(8)]


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "tools.json").write_text(json.dumps(ROWS))
    (folder / "dataset_info.json").write_text(json.dumps({"tools": {"file_name": "tools.json"}}))
    return folder


def test_comma_lists_and_empty_tokens() -> None:
    section = ModelSection(add_tokens="foo, bar", add_special_tokens="<tool>,</tool>")
    assert section.add_tokens == ["foo", "bar"] and section.add_special_tokens == ["<tool>", "</tool>"]
    with pytest.raises(ValueError, match="add_tokens: a token must not be empty"):
        ModelSection(add_tokens=["ok", " "])


@pytest.mark.parametrize(
    "adapter", [{"method": "lora", "rank": 4}, {"method": "freeze", "trainable_layers": 1}]
)
def test_added_tokens_train_and_chat_loads_them(make_config, dataset_dir: Path, tiny_model_dir: str, adapter):
    plugins = load_plugins()
    path = make_config(
        model={"add_special_tokens": "<tool>,</tool>"},
        data={"dataset": ["tools"], "dataset_dir": str(dataset_dir)},
        adapter=adapter,
        training={"learning_rate": 5e-2, "max_steps": 3},
    )
    config = load_and_validate(str(path), [], plugins)
    run = run_training(config, plugins)
    manifest = json.loads((run / "manifest.json").read_text())
    base_rows = json.loads((Path(tiny_model_dir) / "config.json").read_text())["vocab_size"]
    assert manifest["vocabulary"] == {"embedding_rows": base_rows + 2, "added": 2}
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(run / "model"))
    assert len(saved) == base_rows + 2 and saved.convert_tokens_to_ids("<tool>") == base_rows
    assert saved.decode(saved("a <tool> b")["input_ids"], skip_special_tokens=True).split() == ["a", "b"]
    weights = load_file(str(next((run / "model").glob("*.safetensors"))))
    embeddings = [v for k, v in weights.items() if "embed_tokens" in k]
    assert embeddings and all(e.shape[0] == base_rows + 2 for e in embeddings)
    # the new rows trained away from their start (the mean of the old rows) for the tokens the data uses
    embedding = embeddings[0].float()
    mean = embedding[:base_rows].mean(dim=0)
    assert not torch.allclose(embedding[base_rows], mean, atol=1e-3)
    target = resolve_chat_target(str(run), plugins)
    model = target.load_model(torch.float32)
    assert model.get_input_embeddings().weight.shape[0] == base_rows + 2
    assert torch.equal(model.get_input_embeddings().weight[base_rows].float(), embedding[base_rows])
