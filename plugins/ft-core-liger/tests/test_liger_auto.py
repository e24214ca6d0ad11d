"""Liger by default (``liger.enabled: auto``) without a GPU: when the automatic patch applies, what it logs, and
how a config turns it off or insists on it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import ft_core_liger
from ft_core.api import FtCoreError, ModelRole
from ft_core_liger import LigerOptions, LigerSection
from ft_core_liger import auto as auto_module
from ft_core_liger import patch as patch_module


@pytest.fixture
def gpu_machine(monkeypatch):
    """Pretend CUDA is there and liger-kernel + triton are installed; record what the patch is applied with."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("liger_kernel", "triton"):
            return SimpleNamespace(name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(patch_module.importlib.util, "find_spec", find_spec)
    calls: list[LigerOptions] = []

    def patch_model(self, model, options):
        calls.append(options)
        return model

    monkeypatch.setattr(patch_module.LigerPatch, "patch_model", patch_model)
    monkeypatch.setattr(
        patch_module, "liger_apply_functions", lambda: dict.fromkeys(("llama", "qwen2", "gemma", "gemma2"))
    )
    return calls


def _run(
    enabled="auto", *, uses_gpu=True, patches=(), use_cpu=None, head_modules=(), main=True, unsloth=None
) -> SimpleNamespace:
    sections = {"liger": LigerSection(enabled=enabled)}
    if unsloth is not None:  # the section ft-core-unsloth adds
        sections["unsloth"] = SimpleNamespace(enabled=unsloth)
    config = SimpleNamespace(
        section=lambda name: sections[name],
        many=lambda section: [SimpleNamespace(name=n) for n in patches] if section == "patches" else [],
        training=SimpleNamespace(use_cpu=use_cpu),
        stage=SimpleNamespace(
            options=None,
            component=SimpleNamespace(role=lambda name, options: ModelRole(name, head_modules=head_modules)),
        ),
    )
    recorded: dict = {}
    return SimpleNamespace(
        config=config,
        uses_gpu=uses_gpu,
        process=SimpleNamespace(is_main_process=main),
        state={},
        recorded=recorded,
        record=lambda key, value, reason="": recorded.__setitem__(key, (value, reason)),
    )


def _model(model_type: str = "llama") -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(model_type=model_type))


def test_registers_the_liger_section_with_auto_as_default(make_plugins):
    plugins = make_plugins(ft_core_liger)
    assert "liger" in plugins.names("config_section")
    assert plugins.get("config_section", "liger").schema is LigerSection
    assert LigerSection().enabled == "auto"


def test_auto_patches_a_supported_model_on_a_gpu_run_and_says_so(gpu_machine, capsys):
    assert auto_module.apply_automatically(_model("qwen2"), _run(), "policy") is True
    assert gpu_machine == [LigerOptions()]  # every default kernel, fused loss included
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "liger kernels: on (fused linear cross entropy, rms norm, swiglu, rope;" in err
    assert "liger: {enabled: false}" in err


def test_the_reference_model_is_patched_silently(gpu_machine, capsys):
    assert auto_module.apply_automatically(_model(), _run(), "reference") is True
    assert len(gpu_machine) == 1 and capsys.readouterr().err == ""


def test_a_cpu_run_is_left_alone(gpu_machine, capsys):
    assert auto_module.apply_automatically(_model(), _run(uses_gpu=False), "policy") is False
    assert gpu_machine == [] and capsys.readouterr().err == ""


def test_enabled_false_and_an_explicit_patch_turn_the_automatic_patch_off(gpu_machine):
    assert auto_module.apply_automatically(_model(), _run(enabled=False), "policy") is False
    assert auto_module.apply_automatically(_model(), _run(patches=("liger",)), "policy") is False
    assert gpu_machine == []


def test_an_unsupported_model_type_is_logged_not_patched(gpu_machine, capsys):
    assert auto_module.apply_automatically(_model("starcoder2"), _run(), "policy") is False
    assert gpu_machine == []
    assert (
        "liger kernels: off (model_type 'starcoder2' is not supported by liger-kernel (supported: llama,"
        in (capsys.readouterr().err)
    )


def test_auto_patches_llama_forward_types_and_true_patches_every_type_liger_maps(gpu_machine, capsys):
    assert auto_module.apply_automatically(_model("gemma"), _run(), "policy") is True
    assert gpu_machine == [LigerOptions()]
    # Gemma 2 (softcapped logits) goes through Liger's own forward, not verified on transformers 5: only on request.
    assert auto_module.apply_automatically(_model("gemma2"), _run(), "policy") is False
    assert "liger kernels: off (automatic only for" in capsys.readouterr().err
    assert auto_module.apply_automatically(_model("gemma2"), _run(enabled=True), "policy") is True
    assert len(gpu_machine) == 2


def test_enabled_true_makes_an_unusable_run_an_error(gpu_machine):
    with pytest.raises(
        FtCoreError, match=r"liger.enabled: true, but model_type 'starcoder2' is not supported"
    ):
        auto_module.apply_automatically(_model("starcoder2"), _run(enabled=True), "policy")


@pytest.mark.parametrize("enabled", ["auto", True])
def test_a_model_unsloth_loaded_is_left_alone_and_logged(gpu_machine, capsys, enabled):
    model = _model()
    model.config.unsloth_version = "2026.11.1"
    assert auto_module.apply_automatically(model, _run(enabled=enabled), "policy") is False
    assert "liger kernels: off (the model was loaded by Unsloth" in capsys.readouterr().err
    assert auto_module.apply_automatically(_model(), _run(enabled=enabled, unsloth=True), "policy") is False
    assert "liger kernels: off (unsloth.enabled: Unsloth brings its own kernels)" in capsys.readouterr().err
    assert gpu_machine == []
    # ft-core-unsloth installed but off: Liger as usual.
    assert auto_module.apply_automatically(_model(), _run(enabled=enabled, unsloth=False), "policy") is True


def test_missing_liger_kernel_is_logged_with_the_pip_command(gpu_machine, monkeypatch, capsys):
    monkeypatch.setattr(auto_module, "unusable_reason", lambda: "liger-kernel is not installed; pip it")
    assert auto_module.apply_automatically(_model(), _run(), "policy") is False
    assert "liger kernels: off (liger-kernel is not installed; pip it)" in capsys.readouterr().err


def test_stages_with_heads_keep_their_logits(gpu_machine):
    auto_module.apply_automatically(_model(), _run(head_modules=("v_head",)), "policy")
    assert gpu_machine == [LigerOptions(fused_linear_cross_entropy=False)]


def test_validate_reports_enabled_true_on_a_cpu_run_and_without_liger(monkeypatch):
    assert auto_module.validate(_run(enabled=True, use_cpu=True).config) == [
        "liger.enabled: true needs a CUDA GPU, but training.use_cpu is true; use auto or false"
    ]
    monkeypatch.setattr(auto_module, "unusable_reason", lambda: "liger-kernel is not installed")
    assert auto_module.validate(_run(enabled=True).config) == [
        "liger.enabled: true, but liger-kernel is not installed"
    ]
    assert auto_module.validate(_run(enabled="auto").config) == []  # auto never fails a run


def test_ft_core_validate_checks_the_section(tmp_path: Path, tiny_model_dir, capsys):
    from ft_core.cli import main

    config = {
        "model": {"name_or_path": tiny_model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64},
        "training": {"output_dir": str(tmp_path / "out"), "use_cpu": True, "max_steps": 2},
        "liger": {"enabled": "sometimes"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert main(["validate", str(path)]) == 2
    assert "liger.enabled" in capsys.readouterr().err
    config["liger"] = {"enabled": False}
    path.write_text(json.dumps(config))
    assert main(["validate", str(path)]) == 0


# --------------------------------------------------------------------------------------- kernel warm-up
def test_warmup_follows_where_the_patch_will_apply(gpu_machine):
    llama, gemma = SimpleNamespace(model_type="llama"), SimpleNamespace(model_type="gemma2")
    assert auto_module.warmup_options(llama, _run()) == LigerOptions()
    assert auto_module.warmup_options(llama, _run(head_modules=("score",))) == LigerOptions(
        fused_linear_cross_entropy=False
    )  # a stage with its own heads keeps its logits
    assert auto_module.warmup_options(gemma, _run()) is None  # auto: the fused-forward types only
    assert auto_module.warmup_options(llama, _run(uses_gpu=False)) is None
    assert auto_module.warmup_options(llama, _run(enabled=False)) is None
    assert auto_module.warmup_options(llama, _run(unsloth=True)) is None


def test_the_policy_model_warms_up_before_its_weights_load_and_training_waits(gpu_machine, monkeypatch):
    from ft_core_liger import warmup

    started, joined = [], []

    class Thread:
        def join(self):
            joined.append(self)

    def start_warmup(model_config, options, dtype, device):
        started.append((model_config.model_type, options, device))
        return Thread()

    monkeypatch.setattr(warmup, "start_warmup", start_warmup)
    monkeypatch.setattr(warmup, "compute_dtype", lambda run: "bf16")
    run = _run()
    run.process.local_rank = 3
    config = SimpleNamespace(model_type="llama")
    ft_core_liger.ft_adjust_model_config(model_config=config, run=run, role="reference")
    assert started == []  # the policy model's kernels are the ones training needs first
    ft_core_liger.ft_adjust_model_config(model_config=config, run=run, role="policy")
    assert started == [("llama", LigerOptions(), 3)]
    ft_core_liger.ft_before_train(trainer=None, run=run)
    assert len(joined) == 1
    ft_core_liger.ft_before_train(trainer=None, run=run)
    assert len(joined) == 1  # joined once


def test_a_large_vocabulary_warms_up_with_the_same_block_size():
    from ft_core_liger.warmup import warm_vocabulary

    assert warm_vocabulary(32000) == 32000
    assert warm_vocabulary(128256) == 32784  # a multiple of 16 above the block cap: the same kernel
    assert warm_vocabulary(151937) == 32769


def test_liger_switches_itself_on_for_gpu_runs_only(gpu_machine, make_config):
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.config.activation import active_plugins
    from ft_core.engine.run.runner import load_and_validate

    plugins = load_plugins()
    gpu_run = load_and_validate(str(make_config(training={"use_cpu": None})), [], plugins)
    reasons = {p.distribution: p.reason for p in active_plugins(gpu_run, plugins)}
    assert reasons["ft-core-liger"].startswith("on by default: Liger kernels on CUDA GPU runs")
    cpu_run = load_and_validate(str(make_config(training={"use_cpu": True})), [], plugins)
    assert "ft-core-liger" not in {p.distribution for p in active_plugins(cpu_run, plugins)}
    disabled = load_and_validate(
        str(make_config(training={"use_cpu": None}, plugins={"disable": ["liger"]})), [], plugins
    )
    assert "ft-core-liger" not in {p.distribution for p in active_plugins(disabled, plugins)}
