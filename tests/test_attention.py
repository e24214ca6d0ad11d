"""``model.attn_implementation: auto``: the choice on CPU and (simulated) GPUs, its log line and manifest record."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig

from ft_core.bootstrap import load_plugins
from ft_core.engine.models import attention
from ft_core.engine.models.attention import AttentionChoice, choose_attention, model_class_supports
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.runner import load_and_validate, run_training

LLAMA = AutoConfig.for_model("llama", hidden_size=32, num_attention_heads=4, num_hidden_layers=1)


@pytest.fixture
def machine(monkeypatch):
    """Simulate a GPU of compute capability ``capability`` with the given flash-attn packages installed."""

    def set_machine(capability=(9, 0), packages=()) -> None:
        monkeypatch.setattr(attention, "_cuda_capability", lambda: capability)
        monkeypatch.setattr(attention, "installed", lambda package: package in packages)

    return set_machine


def test_cpu_gets_sdpa():
    choice = choose_attention("auto", LLAMA, on_gpu=False, dtype=torch.float32)
    assert choice == AttentionChoice("sdpa", "CPU run")
    assert choice.log_line() == "attention: sdpa (CPU run)"


def test_an_explicit_value_wins(machine):
    machine(packages=("flash_attn", "flash_attn_interface"))
    choice = choose_attention("eager", LLAMA, on_gpu=True, dtype=torch.bfloat16)
    assert choice == AttentionChoice("eager", "set in model.attn_implementation")
    assert choose_attention(None, LLAMA, on_gpu=True, dtype=torch.bfloat16).implementation is None


def test_hopper_with_flash_attn_3_gets_fa3(machine):
    machine(capability=(9, 0), packages=("flash_attn_interface", "flash_attn"))
    choice = choose_attention("auto", LLAMA, on_gpu=True, dtype=torch.bfloat16)
    assert choice.implementation == "flash_attention_3"


def test_flash_attn_2_on_other_gpus_or_without_fa3(machine):
    machine(capability=(8, 0), packages=("flash_attn_interface", "flash_attn"))
    choice = choose_attention("auto", LLAMA, on_gpu=True, dtype=torch.float16)
    assert choice.implementation == "flash_attention_2"
    assert "flash-attn 3 is for Hopper GPUs" in choice.reason
    machine(capability=(9, 0), packages=("flash_attn",))
    assert choose_attention("auto", LLAMA, on_gpu=True, dtype=torch.bfloat16).implementation == (
        "flash_attention_2"
    )


def test_gpu_without_flash_attn_gets_sdpa_with_the_reason(machine):
    machine(packages=())
    choice = choose_attention("auto", LLAMA, on_gpu=True, dtype=torch.bfloat16)
    assert choice.log_line() == "attention: sdpa (flash-attn not installed)"


def test_flash_attn_is_not_chosen_for_fp32_weights(machine):
    machine(packages=("flash_attn",))
    choice = choose_attention("auto", LLAMA, on_gpu=True, dtype=torch.float32)
    assert choice == AttentionChoice("sdpa", "flash-attn needs bf16/fp16 weights, the model loads in float32")


def test_models_without_flash_or_sdpa_support_fall_back(machine, monkeypatch):
    machine(packages=("flash_attn",))
    monkeypatch.setattr(attention, "model_class_supports", lambda config, impl: impl == "sdpa")
    choice = choose_attention("auto", LLAMA, on_gpu=True, dtype=torch.bfloat16)
    assert choice == AttentionChoice("sdpa", "llama does not support flash-attn")
    monkeypatch.setattr(attention, "model_class_supports", lambda config, impl: False)
    choice = choose_attention("auto", LLAMA, on_gpu=False, dtype=torch.float32)
    assert choice.implementation is None and "does not support sdpa" in choice.reason


def test_model_class_support_is_read_from_the_architecture():
    assert model_class_supports(LLAMA, "sdpa") and model_class_supports(LLAMA, "flash_attention_2")
    assert not model_class_supports(object(), "sdpa")


def test_remote_code_models_keep_the_transformers_default(machine):
    machine(packages=("flash_attn",))
    choice = choose_attention("auto", object(), on_gpu=True, dtype=torch.bfloat16)
    assert choice.implementation is None and "remote code" in choice.reason


def test_the_loaded_model_uses_the_choice_and_the_run_records_it(make_config, tmp_path, capsys):
    plugins = load_plugins()
    config = load_and_validate(str(make_config()), [], plugins)
    assert config.model.attn_implementation == "auto"
    run = EngineRun.from_config(config, plugins, tmp_path)
    model = run.load_model("reference", trainable=False)
    assert model.config._attn_implementation == "sdpa"
    assert run.facts["attention"] == {"implementation": "sdpa", "reason": "CPU run"}
    run.load_model("reference", trainable=False)
    assert capsys.readouterr().err.count("attention: sdpa (CPU run)") == 1  # one line per run


def test_the_manifest_records_the_attention(make_config):
    plugins = load_plugins()
    run_dir = run_training(load_and_validate(str(make_config()), [], plugins), plugins)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["attention"] == {"implementation": "sdpa", "reason": "CPU run"}
    assert manifest["decisions"]["gradient_checkpointing"]["value"]["mode"] == "off"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_loads_the_fastest_installed_attention(make_config, tmp_path):
    plugins = load_plugins()
    config = load_and_validate(str(make_config(training={"use_cpu": None})), [], plugins)
    run = EngineRun.from_config(config, plugins, tmp_path)
    model = run.load_model("reference", trainable=False)
    expected = choose_attention("auto", model.config, on_gpu=True, dtype=model.dtype).implementation
    assert model.config._attn_implementation == expected == run.facts["attention"]["implementation"]
    assert expected in ("flash_attention_3", "flash_attention_2", "sdpa")
