"""The Unsloth plugin: selection and validation, the load and adapter hooks against a fake ``unsloth`` module that
records its calls, and (where Unsloth is installed) real runs."""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
import yaml

import ft_core_unsloth
from ft_core.api import ConfigSection, FtCoreError, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_unsloth import loading
from ft_core_unsloth.adapter import UnslothLoraAdapter
from ft_core_unsloth.options import UnslothLoraOptions, UnslothOptions

PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


# ------------------------------------------------------------------------------------------------- fakes
class FakeFastLanguageModel:
    """Records the calls; loads with transformers and applies LoRA with PEFT, as far as a CPU test needs."""

    calls: ClassVar[list[tuple[str, dict]]] = []

    @staticmethod
    def from_pretrained(**kwargs):
        from transformers import AutoModelForCausalLM

        FakeFastLanguageModel.calls.append(("from_pretrained", kwargs))
        model = AutoModelForCausalLM.from_pretrained(kwargs["model_name"], dtype=kwargs["dtype"])
        return model, "tokenizer"

    @staticmethod
    def get_peft_model(model, **kwargs):
        from peft import LoraConfig, get_peft_model

        checkpointing = getattr(model, "is_activation_checkpointing", None)
        if checkpointing is None:
            checkpointing = getattr(model, "is_gradient_checkpointing", False)
        FakeFastLanguageModel.calls.append(
            ("get_peft_model", {**kwargs, "engine_checkpointing": checkpointing})
        )
        config = LoraConfig(
            r=kwargs["r"],
            lora_alpha=kwargs["lora_alpha"],
            target_modules=kwargs["target_modules"],
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)


@pytest.fixture
def fake_unsloth(monkeypatch):
    module = types.ModuleType("unsloth")
    module.__spec__ = importlib.machinery.ModuleSpec("unsloth", None)
    module.__version__ = "2026.0.fake"
    module.FastLanguageModel = FakeFastLanguageModel
    FakeFastLanguageModel.calls = []
    monkeypatch.setitem(sys.modules, "unsloth", module)
    return FakeFastLanguageModel


@pytest.fixture
def no_unsloth(monkeypatch):
    monkeypatch.setattr(loading, "installed", lambda: False)


def _config(tmp_path: Path, model_dir: str, **sections) -> Path:
    config = {
        "model": {"name_or_path": model_dir},
        "data": {
            "dataset": ["identity"],
            "cutoff_len": 64,
            "max_samples": 8,
            "preprocessing_workers": 1,
            "cache_dir": str(tmp_path / "cache"),
        },
        "adapter": {"method": "unsloth_lora", "rank": 4, "alpha": 8},
        "unsloth": {"enabled": True},
        "training": {
            "output_dir": str(tmp_path / "out"),
            "use_cpu": True,
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            "save_steps": 100,
            "plot_loss": False,
            "gradient_checkpointing": False,
        },
    }
    for name, value in sections.items():
        if value is None:
            config.pop(name, None)
        elif isinstance(value, dict) and name not in ("adapter", "quantization"):
            config[name] = {**config.get(name, {}), **value}
        else:
            config[name] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _validate(path: Path, capsys) -> tuple[int, str]:
    from ft_core.cli import main

    status = main(["validate", str(path)])
    captured = capsys.readouterr()
    return status, captured.err + captured.out


# ------------------------------------------------------------------------------------------ registration
def test_import_light():
    assert check_import_light("ft_core_unsloth") is None


def test_registers_the_section_and_the_adapter(make_plugins):
    plugins = make_plugins(ft_core_unsloth)
    section = plugins.get("config_section", "unsloth")
    assert isinstance(section, ConfigSection) and section.schema is UnslothOptions
    assert isinstance(plugins.get("adapter", "unsloth_lora"), UnslothLoraAdapter)
    assert not UnslothLoraAdapter.saves_full_model


def test_options_are_checked():
    assert UnslothOptions().enabled is False  # off unless selected
    with pytest.raises(OptionsError, match="gradient_checkpointing must be"):
        UnslothOptions(gradient_checkpointing="sometimes")
    with pytest.raises(OptionsError, match="rank must be >= 1"):
        UnslothLoraOptions(rank=0)
    assert UnslothLoraOptions(targets="q_proj, v_proj").targets == ["q_proj", "v_proj"]


# -------------------------------------------------------------------------------------------- validation
def test_not_selected_changes_nothing(tmp_path, tiny_model_dir, capsys, no_unsloth):
    path = _config(tmp_path, tiny_model_dir, unsloth=None, adapter={"method": "full"})
    status, output = _validate(path, capsys)
    assert status == 0, output
    run = SimpleNamespace(config=SimpleNamespace(section=lambda name: UnslothOptions()))
    assert (
        loading.load(run, "policy", SimpleNamespace(model_type="llama"), {}, tiny_model_dir, "causal_lm")
        is None
    )


def test_not_installed_is_a_validation_error(tmp_path, tiny_model_dir, capsys, no_unsloth):
    status, output = _validate(_config(tmp_path, tiny_model_dir), capsys)
    assert status == 2
    assert "unsloth.enabled: the unsloth package is not installed" in output
    assert "pip install unsloth unsloth_zoo" in output


def test_cpu_is_a_validation_error(tmp_path, tiny_model_dir, capsys, fake_unsloth):
    status, output = _validate(_config(tmp_path, tiny_model_dir), capsys)
    assert status == 2
    assert (
        "Unsloth's kernels need a CUDA GPU, but this run trains on the CPU (training.use_cpu is true)"
        in output
    )


def test_no_gpu_found_is_a_validation_error(tmp_path, tiny_model_dir, capsys, fake_unsloth, monkeypatch):
    monkeypatch.setattr(loading, "cuda_available", lambda: False)
    status, output = _validate(_config(tmp_path, tiny_model_dir, training={"use_cpu": None}), capsys)
    assert status == 2
    assert "(no CUDA GPU is available)" in output


def test_a_gpu_run_validates(tmp_path, tiny_model_dir, capsys, fake_unsloth, monkeypatch):
    monkeypatch.setattr(loading, "cuda_available", lambda: True)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # core's rule for training.use_cpu: false
    training = {"use_cpu": False, "precision": "fp32"}
    path = _config(tmp_path, tiny_model_dir, training=training)
    status, output = _validate(path, capsys)
    assert status == 0, output


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"adapter": {"method": "lora", "rank": 4}},
            "adapter.method: lora is applied by PEFT, which bypasses Unsloth's fused LoRA kernels; with "
            "unsloth.enabled use adapter.method: unsloth_lora",
        ),
        ({"adapter": {"method": "full"}}, "adapter.method: full cannot be combined with unsloth.enabled"),
        (
            {"quantization": {"method": "bitsandbytes", "bits": 8}},
            "quantization.bits: Unsloth trains 4-bit bitsandbytes models (QLoRA) only",
        ),
        (
            {"quantization": {"method": "bnb", "bits": 4, "upcast": "norms"}},
            "quantization.upcast: Unsloth sets the dtypes",
        ),
        ({"patches": ["liger"]}, "patches: liger and Unsloth both replace the model's kernels"),
        ({"unsloth": {"enabled": False}}, "adapter.method: unsloth_lora trains a model loaded by Unsloth"),
    ],
    ids=["lora", "full", "8-bit", "upcast", "liger", "adapter-without-unsloth"],
)
def test_combinations_unsloth_cannot_run_are_refused(
    tmp_path, tiny_model_dir, capsys, fake_unsloth, sections, expected
):
    # allow_cpu: only the combination under test is wrong
    sections = {**sections, "unsloth": {"allow_cpu": True, **sections.get("unsloth", {})}}
    path = _config(tmp_path, tiny_model_dir, **sections)
    status, output = _validate(path, capsys)
    assert status == 2
    assert expected in output


def test_liger_by_default_on_gpu_runs_is_not_a_problem(tmp_path, tiny_model_dir, fake_unsloth, monkeypatch):
    """ft-core-liger's automatic patch steps aside for a model Unsloth loaded: ``liger.enabled: auto`` is fine."""
    monkeypatch.setattr(loading, "cuda_available", lambda: True)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # core's rule for training.use_cpu: false
    training = {"use_cpu": False, "precision": "fp32"}
    config = SimpleNamespace(
        adapter=SimpleNamespace(name="unsloth_lora"),
        one=lambda section: None,
        many=lambda section: [],
        sections={"liger": SimpleNamespace(enabled="auto")},
        model=SimpleNamespace(name_or_path=tiny_model_dir),
        training=SimpleNamespace(**training),
    )
    assert loading.problems(config, UnslothOptions(enabled=True)) == []
    config.many = lambda section: [SimpleNamespace(name="liger")] if section == "patches" else []
    (problem,) = loading.problems(config, UnslothOptions(enabled=True))
    assert problem.startswith("patches: liger and Unsloth both replace the model's kernels")


def test_unsupported_model_type_is_refused(tmp_path, tiny_model_dir, capsys, fake_unsloth):
    folder = tmp_path / "model"
    folder.mkdir()
    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
    path = _config(tmp_path, str(folder), unsloth={"allow_cpu": True})
    status, output = _validate(path, capsys)
    assert status == 2
    assert "model.name_or_path: model_type 'gpt_neox' is not supported by Unsloth" in output
    with pytest.raises(FtCoreError, match="'gpt_neox' is not supported"):
        loading.load(_run(), "policy", SimpleNamespace(model_type="gpt_neox"), {}, "/models/x", "causal_lm")


def test_a_broken_install_is_a_validation_error(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "unsloth", None)  # "installed", but importing it fails
    monkeypatch.setattr(loading, "installed", lambda: True)
    status, output = _validate(_config(tmp_path, tiny_model_dir, unsloth={"allow_cpu": True}), capsys)
    assert status == 2
    assert "unsloth.enabled: unsloth is installed but cannot be imported (ModuleNotFoundError" in output


# ------------------------------------------------------------------------------------ loading and adapter
def _run(**training):
    from ft_core.api import DataSection, ModelSection, TrainingSection

    sections = {"unsloth": UnslothOptions(enabled=True)}
    config = SimpleNamespace(
        section=sections.__getitem__,
        model=ModelSection(name_or_path="/models/x"),
        stage=SimpleNamespace(name="rm"),
        data=DataSection(cutoff_len=512),
        training=TrainingSection(**{"use_cpu": False, **training}),
    )
    return SimpleNamespace(config=config, process=SimpleNamespace(local_rank=1, is_main_process=True))


def test_from_pretrained_kwargs_follow_the_run():
    import torch

    model_config = SimpleNamespace(model_type="llama")
    kwargs = loading.from_pretrained_kwargs(
        _run(seed=7), "/models/x", model_config, {"dtype": torch.bfloat16}
    )
    assert kwargs["model_name"] == "/models/x"  # the folder the engine resolved
    assert kwargs["max_seq_length"] == 512  # data.cutoff_len
    assert kwargs["dtype"] is torch.bfloat16
    assert kwargs["load_in_4bit"] is False and "quantization_config" not in kwargs
    assert kwargs["device_map"] == {"": 1}  # the process's own GPU
    assert kwargs["use_gradient_checkpointing"] == "unsloth"  # training.gradient_checkpointing: auto
    assert kwargs["random_state"] == 7


def test_bitsandbytes_4bit_loads_in_4bit_with_the_quantizers_config():
    quantization_config = SimpleNamespace(load_in_4bit=True, bnb_4bit_quant_type="fp4")
    load_kwargs = {"dtype": None, "quantization_config": quantization_config, "device_map": {"": 0}}
    kwargs = loading.from_pretrained_kwargs(
        _run(gradient_checkpointing=False),
        "/m",
        SimpleNamespace(model_type="qwen2"),
        load_kwargs,
    )
    assert kwargs["load_in_4bit"] is True
    assert kwargs["quantization_config"] is quantization_config
    assert kwargs["device_map"] == {"": 0}
    assert kwargs["use_gradient_checkpointing"] is False


def test_checkpointing_mode():
    from ft_core.api import TrainingSection

    assert (
        loading.checkpointing_mode(TrainingSection(gradient_checkpointing=False), UnslothOptions()) is False
    )
    assert (
        loading.checkpointing_mode(TrainingSection(gradient_checkpointing=True), UnslothOptions())
        == "unsloth"
    )
    standard = UnslothOptions(gradient_checkpointing="standard")
    assert loading.checkpointing_mode(TrainingSection(gradient_checkpointing=True), standard) is True


def test_only_the_policy_model_is_loaded_by_unsloth(fake_unsloth):
    assert (
        loading.load(_run(), "reference", SimpleNamespace(model_type="llama"), {}, "/models/x", "causal_lm")
        is None
    )
    assert fake_unsloth.calls == []


def test_a_policy_model_with_another_head_is_refused(fake_unsloth):
    with pytest.raises(
        FtCoreError, match="Unsloth loads causal LMs, but the rm stage's policy model has a value head"
    ):
        loading.load(_run(), "policy", SimpleNamespace(model_type="llama"), {}, "/models/x", "value")
    assert fake_unsloth.calls == []


def test_the_trainer_leaves_checkpointing_to_unsloth():
    arguments = {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}}
    ft_core_unsloth.ft_adjust_training_arguments(arguments=arguments, run=_run())
    assert arguments == {"gradient_checkpointing": False, "gradient_checkpointing_kwargs": None}


def test_the_adapter_needs_a_model_unsloth_loaded(tiny_model):
    with pytest.raises(FtCoreError, match="that Unsloth did not load"):
        UnslothLoraAdapter().apply(tiny_model, UnslothLoraOptions(), None)


def test_a_run_loads_and_adapts_through_unsloth(tmp_path, tiny_model_dir, fake_unsloth):
    import torch

    from ft_core.cli import main

    path = _config(
        tmp_path, tiny_model_dir, unsloth={"allow_cpu": True}, training={"gradient_checkpointing": True}
    )
    assert main(["run", str(path)]) == 0
    (load, loaded), (adapt, adapted) = fake_unsloth.calls
    assert (load, adapt) == ("from_pretrained", "get_peft_model")
    assert loaded["model_name"] == tiny_model_dir
    assert loaded["max_seq_length"] == 64 and loaded["dtype"] is torch.float32
    assert loaded["load_in_4bit"] is False and loaded["device_map"] == {"": "cpu"}
    assert adapted["r"] == 4 and adapted["lora_alpha"] == 8
    assert set(adapted["target_modules"]) == PROJECTIONS
    assert adapted["use_gradient_checkpointing"] == "unsloth" and adapted["random_state"] == 42
    assert adapted["engine_checkpointing"] is False  # the engine's checkpointing was turned off for Unsloth's
    out = tmp_path / "out"
    assert (out / "model" / "adapter_model.safetensors").is_file()
    results = json.loads((out / "train_results.json").read_text())
    assert results["unsloth_version"] == "2026.0.fake"
    # the artefact is a plain PEFT adapter: inference needs neither Unsloth nor a GPU
    from transformers import AutoModelForCausalLM

    merged = UnslothLoraAdapter().load_for_inference(
        str(out / "model"), lambda: AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    )
    assert type(merged).__name__ == "LlamaForCausalLM" and not merged.training


# ------------------------------------------------------------------------------------- the real library
def _real_run(tmp_path: Path, model_dir: str, **sections) -> subprocess.CompletedProcess:
    path = _config(tmp_path, model_dir, **sections)
    env = {
        **os.environ,
        "UNSLOTH_DISABLE_STATISTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "UNSLOTH_COMPILE_LOCATION": str(tmp_path / "unsloth_compiled_cache"),
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ft_core.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.mark.skipif(not loading.installed(), reason="unsloth is not installed")
def test_real_unsloth_cpu_fallback_run(tmp_path, tiny_model_dir):
    result = _real_run(tmp_path, tiny_model_dir, unsloth={"allow_cpu": True})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded with FastLanguageModel" in result.stderr
    assert (tmp_path / "out" / "model" / "adapter_model.safetensors").is_file()


@pytest.mark.gpu
@pytest.mark.parametrize("quantization", [None, {"method": "bitsandbytes", "bits": 4}], ids=["bf16", "4bit"])
def test_real_unsloth_gpu_run(tmp_path, tiny_model_dir, quantization):
    import torch

    if not torch.cuda.is_available() or not loading.installed():
        pytest.skip("needs a CUDA GPU and unsloth")
    training = {"use_cpu": False, "precision": "bf16", "gradient_checkpointing": True}
    result = _real_run(
        tmp_path, tiny_model_dir, training=training, quantization=quantization, liger={"enabled": False}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded with FastLanguageModel" in result.stderr
    results = json.loads((tmp_path / "out" / "train_results.json").read_text())
    assert results["train_loss"] > 0 and results["unsloth_version"]


_PACKED_ROWS = """
import sys, torch
from unsloth import FastLanguageModel
model, _ = FastLanguageModel.from_pretrained(sys.argv[1], max_seq_length=64, dtype=torch.float32,
    load_in_4bit=False, fix_tokenizer=False, device_map={"": sys.argv[2]})
model.train()  # as in training: no KV cache
device = model.get_input_embeddings().weight.device
a = torch.randint(3, 300, (1, 12), device=device); b = torch.randint(3, 300, (1, 9), device=device)
with torch.no_grad():
    alone = torch.cat([model(input_ids=a, use_cache=False).logits, model(input_ids=b, use_cache=False).logits], 1)
    positions = torch.cat([torch.arange(12), torch.arange(9)])[None].to(device)
    packed = model(input_ids=torch.cat([a, b], 1), position_ids=positions, use_cache=False).logits
print("MAXDIFF", (packed - alone).abs().max().item())
"""


@pytest.mark.skipif(not loading.installed(), reason="unsloth is not installed")
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda:0", marks=pytest.mark.gpu)])
def test_real_unsloth_keeps_packed_rows_apart(tmp_path, tiny_model_dir, device):
    # ft-core's packing hands the model one row of concatenated samples with restarting position ids and no
    # attention mask; Unsloth's forward must find the rows from the position ids (else they attend to each other)
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    env = {**os.environ, "UNSLOTH_DISABLE_STATISTICS": "1", "HF_HUB_OFFLINE": "1"}
    env["UNSLOTH_COMPILE_LOCATION"] = str(tmp_path / "unsloth_compiled_cache")
    result = subprocess.run(
        [sys.executable, "-c", _PACKED_ROWS, tiny_model_dir, device], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    difference = float(result.stdout.split("MAXDIFF")[-1])
    assert difference < 1e-3
