"""The liger patch on a CUDA GPU: kernels in place, same loss and gradients as the unpatched model, a real run.

Skipped without CUDA (and without liger-kernel / triton). Liger replaces some functions process-wide (RoPE,
cross-entropy, the architecture's RMSNorm / MLP classes); the ``restore_globals`` fixture puts them back after
each test, so every reference model here is a genuinely unpatched one.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from ft_core.api import has_fused_loss
from ft_core_liger import LigerOptions, LigerPatch, unusable_reason

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(unusable_reason() is not None, reason=str(unusable_reason())),
]

_ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
_DIMS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)


@pytest.fixture(autouse=True)
def restore_globals(monkeypatch):
    """Record what Liger may replace process-wide; monkeypatch restores it after the test."""
    import importlib

    for model_type in _ARCHITECTURES:
        module = importlib.import_module(f"transformers.models.{model_type}.modeling_{model_type}")
        prefix = {"llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3"}[model_type]
        for name in ("apply_rotary_pos_emb", f"{prefix}RMSNorm", f"{prefix}MLP"):
            monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", torch.nn.functional.cross_entropy)


def _model(tiny_tokenizer, model_type: str):
    from ft_core.testing.tiny import tiny_model

    model = tiny_model(tiny_tokenizer, model_type=model_type, **_DIMS)
    return model.to(device="cuda", dtype=torch.bfloat16)


def _batch(model, batch: int = 2, length: int = 48):
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)
    labels = input_ids.clone()
    labels[:, :10] = -100  # a masked prompt, as in SFT
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -5:] = 0  # some padding
    labels[1, -5:] = -100
    return {
        k: v.cuda()
        for k, v in dict(input_ids=input_ids, labels=labels, attention_mask=attention_mask).items()
    }


def _loss_and_grads(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach().float().item(), grads


def _eval_logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()


def _module_names(model) -> list[str]:
    return [m._get_name() for m in model.modules()]


def _assert_close_grads(grads, reference):
    assert grads.keys() == reference.keys()
    for name, expected in reference.items():
        got = grads[name]
        error = (got - expected).norm().item() / (expected.norm().item() + 1e-12)
        cosine = torch.nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0).item()
        assert error < 0.05 and cosine > 0.998, f"{name}: relative error {error:.4f}, cosine {cosine:.5f}"


@pytest.mark.parametrize("model_type", list(_ARCHITECTURES))
def test_kernels_replace_modules_and_match_the_unpatched_model(tiny_tokenizer, model_type):
    from liger_kernel.transformers.rope import liger_rotary_pos_emb

    from ft_core_liger.forward import forward_fits, has_fused_forward

    reference = _model(tiny_tokenizer, model_type)
    patched = copy.deepcopy(reference)
    batch = _batch(reference)
    # The reference runs before any patch: Liger's RoPE replaces the architecture's function process-wide.
    assert "LigerRMSNorm" not in _module_names(reference)
    ref_loss, ref_grads = _loss_and_grads(reference, batch)
    ref_logits = _eval_logits(reference, batch)

    assert LigerPatch().patch_model(patched, LigerOptions()) is patched
    names = _module_names(patched)
    layers = patched.config.num_hidden_layers
    norms_per_layer = 4 if model_type == "qwen3" else 2  # qwen3 adds q_norm and k_norm
    assert names.count("LigerRMSNorm") == norms_per_layer * layers + 1
    assert names.count("LigerSwiGLUMLP") == layers
    # ft-core's own fused forward on transformers >= 5.24 (whose forward it replaces), Liger's own on earlier releases
    assert has_fused_forward(patched) == forward_fits(patched)
    assert has_fused_loss(patched)  # the engine's memory estimates leave the logits out
    modeling = __import__(f"transformers.models.{model_type}.modeling_{model_type}", fromlist=["_"])
    assert modeling.apply_rotary_pos_emb is liger_rotary_pos_emb

    loss, grads = _loss_and_grads(patched, batch)
    assert math.isfinite(loss)
    assert loss == pytest.approx(ref_loss, rel=1e-2)
    _assert_close_grads(grads, ref_grads)
    # Training mode with labels never materialises logits; eval mode gives them, matching the original.
    patched.train()
    assert patched(**batch).logits is None
    logits = _eval_logits(patched, batch)
    assert torch.allclose(logits, ref_logits, atol=5e-2, rtol=5e-2), (logits - ref_logits).abs().max()


def test_cross_entropy_kernel_instead_of_the_fused_one(tiny_tokenizer):
    from liger_kernel.transformers.functional import liger_cross_entropy

    from ft_core_liger.forward import has_fused_forward

    reference = _model(tiny_tokenizer, "llama")
    patched = copy.deepcopy(reference)
    batch = _batch(reference)
    ref_loss, ref_grads = _loss_and_grads(reference, batch)
    options = LigerOptions(fused_linear_cross_entropy=False, cross_entropy=True, rope=False, swiglu=False)
    LigerPatch().patch_model(patched, options)
    assert not has_fused_forward(patched) and not has_fused_loss(patched)
    assert torch.nn.functional.cross_entropy is liger_cross_entropy
    assert "LigerSwiGLUMLP" not in _module_names(patched)
    loss, grads = _loss_and_grads(patched, batch)
    assert loss == pytest.approx(ref_loss, rel=1e-2)
    _assert_close_grads(grads, ref_grads)


def test_fused_loss_flows_through_a_lora_adapter(tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    reference = _model(tiny_tokenizer, "qwen2")
    patched = copy.deepcopy(reference)
    batch = _batch(reference)
    ref_loss, _ = _loss_and_grads(reference, batch)
    LigerPatch().patch_model(patched, LigerOptions())
    lora = get_peft_model(
        patched, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "up_proj"])
    )
    loss, grads = _loss_and_grads(lora, batch)
    assert loss == pytest.approx(
        ref_loss, rel=1e-2
    )  # B = 0 at start: the adapter does not change the loss yet
    assert grads and all("lora_" in name for name in grads)
    assert any(g.abs().sum().item() > 0 for g in grads.values())


def test_two_step_lora_run_with_liger(tmp_path: Path, tiny_model_dir):
    from liger_kernel.transformers.rope import liger_rotary_pos_emb
    from transformers.models.llama import modeling_llama

    from ft_core.cli import main

    config = {
        "model": {"name_or_path": tiny_model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "max_samples": 8, "preprocessing_workers": 1},
        "stage": "sft",
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "patches": ["liger"],
        "training": {
            "output_dir": str(tmp_path / "out"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            "save_steps": 100,
            "precision": "bf16",
            "plot_loss": False,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert main(["run", str(path)]) == 0
    results = json.loads((tmp_path / "out" / "train_results.json").read_text())
    assert math.isfinite(results["train_loss"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {"section": "patches", "name": "liger", "distribution": "ft-core-liger"}.items() <= next(
        c for c in manifest["components"] if c["section"] == "patches"
    ).items()
    assert modeling_llama.apply_rotary_pos_emb is liger_rotary_pos_emb  # the run patched the (llama) model


#: More model types of ft-core's family plugins: the fused loss through this plugin's forward (Llama's forward:
#: mistral, gemma, phi3, olmo2, glm4) or through Liger's own (gemma2/3 softcapping, MoE router losses).
_MORE = {
    "mistral": {},
    "gemma": {},
    "gemma2": {},
    "gemma3_text": {},
    "phi3": {},
    "olmo2": {},
    "glm4": {},
    "mixtral": {"num_local_experts": 4},
    "qwen3_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64},
}


@pytest.mark.parametrize("model_type", list(_MORE))
def test_more_model_types_match_the_unpatched_model(tiny_tokenizer, model_type, monkeypatch):
    import importlib

    from ft_core.testing.tiny import tiny_model

    module = importlib.import_module(
        f"transformers.models.{model_type.removesuffix('_text')}.modeling_{model_type.removesuffix('_text')}"
    )
    for name, value in list(vars(module).items()):  # Liger replaces module functions and classes process-wide
        if callable(value):
            monkeypatch.setattr(module, name, value)
            if isinstance(value, type) and "forward" in vars(value):
                monkeypatch.setattr(value, "forward", vars(value)["forward"])
    reference = tiny_model(tiny_tokenizer, model_type=model_type, **_DIMS, **_MORE[model_type])
    reference = reference.to(device="cuda", dtype=torch.bfloat16)
    patched = copy.deepcopy(reference)
    batch = _batch(reference)
    ref_loss, ref_grads = _loss_and_grads(reference, batch)

    LigerPatch().patch_model(patched, LigerOptions())
    assert any(name.startswith("Liger") for name in _module_names(patched)), _module_names(patched)
    loss, grads = _loss_and_grads(patched, batch)
    assert math.isfinite(loss)
    assert loss == pytest.approx(ref_loss, rel=2e-2)
    _assert_close_grads(grads, ref_grads)
    patched.train()
    assert patched(**batch).logits is None  # the fused loss materialises no logits


def test_the_kernel_warm_up_runs_every_kernel_of_the_patch(monkeypatch):
    from transformers import AutoConfig

    from ft_core_liger import warmup

    config = AutoConfig.for_model("llama", vocab_size=40000, **_DIMS)
    called = []
    import liger_kernel.transformers.functional as functional

    for name in ("liger_rms_norm", "liger_swiglu", "liger_rope", "liger_fused_linear_cross_entropy"):
        original = getattr(functional, name)
        monkeypatch.setattr(
            functional, name, lambda *a, _f=original, _n=name, **k: called.append(_n) or _f(*a, **k)
        )
    warmup.warm_kernels(config, LigerOptions(), torch.bfloat16, torch.cuda.current_device())
    assert called == ["liger_rms_norm", "liger_swiglu", "liger_rope", "liger_fused_linear_cross_entropy"]
    thread = warmup.start_warmup(
        config, LigerOptions(rope=False), torch.bfloat16, torch.cuda.current_device()
    )
    thread.join(timeout=120)
    assert not thread.is_alive()


@pytest.mark.parametrize("disabled", [False, True])
def test_a_gpu_run_names_liger_active_by_default_and_disable_turns_it_off(
    tmp_path: Path, tiny_model_dir, disabled
):
    from ft_core.cli import main

    config = {
        "model": {"name_or_path": tiny_model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "max_samples": 8, "preprocessing_workers": 1},
        "training": {
            "output_dir": str(tmp_path / "out"),
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "precision": "bf16",
            "plot_loss": False,
        },
        **({"plugins": {"disable": ["liger"]}} if disabled else {}),
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert main(["run", str(path)]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    active = {plugin["distribution"]: plugin["reason"] for plugin in manifest["active_plugins"]}
    if disabled:
        assert "ft-core-liger" not in active
        assert "liger.kernels" not in manifest["decisions"]
    else:
        assert active["ft-core-liger"].startswith("on by default: Liger kernels on CUDA GPU runs")
        decision = manifest["decisions"]["liger.kernels"]
        assert decision["by"] == "ft-core-liger" and "rms norm" in decision["value"]
