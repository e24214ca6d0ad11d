"""model.adapters (LLaMA-Factory's adapter_name_or_path): train on from an existing LoRA adapter, or merge it and
train a new one (create_new_adapter); chat rebuilds the same base; mismatches are refused at validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ft_core.api.errors import ConfigError
from ft_core.bootstrap import load_plugins
from ft_core.engine.inference.target import resolve_chat_target
from ft_core.engine.run.runner import load_and_validate, run_training


def _train(path: Path) -> Path:
    plugins = load_plugins()
    return run_training(load_and_validate(str(path), [], plugins), plugins)


def _lora(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "adapter_model.safetensors"))


@pytest.fixture
def first_run(make_config) -> Path:
    return _train(make_config("first.yaml", training={"learning_rate": 5e-2}))


def _logits(run: Path) -> torch.Tensor:
    model = resolve_chat_target(str(run), load_plugins()).load_model(torch.float32)
    with torch.no_grad():
        return model(torch.tensor([[1, 5, 9, 12, 40]])).logits


def test_training_on_from_an_adapter_starts_from_its_weights(
    make_config, first_run: Path, tmp_path: Path
) -> None:
    path = make_config(
        "second.yaml",
        model={"adapters": str(first_run)},
        training={"learning_rate": 1e-12, "output_dir": str(tmp_path / "second")},
    )
    second = _train(path)
    before, after = _lora(first_run), _lora(second)
    assert before.keys() == after.keys()
    assert any(v.abs().max() > 1e-3 for k, v in before.items() if "lora_B" in k), (
        "the first run's B matrices are 0"
    )
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert "base_adapters" not in json.loads((second / "manifest.json").read_text())


def test_a_new_adapter_on_a_merged_one_chats_from_the_same_base(
    make_config, first_run: Path, tmp_path: Path
) -> None:
    path = make_config(
        "third.yaml",
        model={"adapters": [str(first_run)], "create_new_adapter": True},
        training={"learning_rate": 1e-12, "output_dir": str(tmp_path / "third")},
    )
    third = _train(path)
    manifest = json.loads((third / "manifest.json").read_text())
    assert manifest["base_adapters"] == [str((first_run / "model").resolve())]
    assert all(v.abs().max() < 1e-6 for k, v in _lora(third).items() if "lora_B" in k), (
        "a new adapter starts at 0"
    )
    # chat: base + the merged first adapter + the (still identity) new one = the first run's model
    assert torch.allclose(_logits(third), _logits(first_run), atol=1e-4)


def test_chat_merges_adapters_into_a_bare_model(first_run: Path, tiny_model_dir: str) -> None:
    target = resolve_chat_target(tiny_model_dir, load_plugins(), [str(first_run)])
    model = target.load_model(torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 5, 9, 12, 40]])).logits
    assert torch.allclose(logits, _logits(first_run), atol=1e-4)


def test_a_rank_that_differs_from_the_adapter_trained_on_is_refused(make_config, first_run: Path) -> None:
    path = make_config(
        "bad.yaml", model={"adapters": [str(first_run)]}, adapter={"method": "lora", "rank": 8}
    )
    with pytest.raises(ConfigError, match=r"adapter\.rank: 8, but the adapter trained on .* has r 4"):
        load_and_validate(str(path), [], load_plugins())
    path = make_config("missing.yaml", model={"adapters": ["no/such/adapter"]})
    with pytest.raises(ConfigError, match=r"model\.adapters: no/such/adapter: no such adapter folder"):
        load_and_validate(str(path), [], load_plugins())
