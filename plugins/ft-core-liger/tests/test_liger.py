"""The liger patch without a GPU: registration, options, validation messages, model-type mapping."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import ft_core_liger
from ft_core.api import FtCoreError, ModelPatch, OptionsError
from ft_core.testing.import_light import HEAVY, check_import_light
from ft_core_liger import PIP_INSTALL, SUPPORTED_MODEL_TYPES, LigerOptions, LigerPatch
from ft_core_liger import patch as patch_module


def _config(use_cpu: bool | None) -> SimpleNamespace:
    return SimpleNamespace(training=SimpleNamespace(use_cpu=use_cpu))


@pytest.fixture
def cuda(monkeypatch):
    """Pretend whether CUDA is available: ``cuda(True)`` / ``cuda(False)``."""
    import torch

    def set_available(value: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: value)

    return set_available


@pytest.fixture
def installed(monkeypatch):
    """Pretend which of liger_kernel / triton are installed: ``installed(liger=..., triton=...)``."""
    real = importlib.util.find_spec

    def set_installed(liger: bool = True, triton: bool = True) -> None:
        present = {"liger_kernel": liger, "triton": triton}

        def find_spec(name, *args, **kwargs):
            if name in present:
                return SimpleNamespace(name=name) if present[name] else None
            return real(name, *args, **kwargs)

        monkeypatch.setattr(patch_module.importlib.util, "find_spec", find_spec)

    return set_installed


# ------------------------------------------------------------------------------------------------ registration
def test_registers_the_liger_model_patch(make_plugins):
    plugins = make_plugins(ft_core_liger)
    assert "liger" in plugins.names("model_patch")
    assert isinstance(plugins.get("model_patch", "liger"), ModelPatch)


def test_registration_imports_neither_liger_nor_triton():
    check_import_light("ft_core_liger", forbidden=(*HEAVY, "liger_kernel", "triton"))


# --------------------------------------------------------------------------------------------------- options
def test_default_options_match_the_documented_ones():
    options = LigerOptions()
    assert (options.fused_linear_cross_entropy, options.rms_norm, options.swiglu, options.rope) == (True,) * 4
    assert options.cross_entropy is False


def test_cross_entropy_and_fused_linear_cross_entropy_are_exclusive():
    with pytest.raises(OptionsError, match=r"exclusive.*set fused_linear_cross_entropy: false"):
        LigerOptions(cross_entropy=True)
    options = LigerOptions(cross_entropy=True, fused_linear_cross_entropy=False)
    assert options.cross_entropy and not options.fused_linear_cross_entropy


def test_turning_every_kernel_off_is_an_error():
    with pytest.raises(OptionsError, match="every kernel is turned off"):
        LigerOptions(fused_linear_cross_entropy=False, rms_norm=False, swiglu=False, rope=False)


# ------------------------------------------------------------------------------------------------ validation
def test_cpu_run_is_a_problem(installed):
    installed()
    problems = LigerPatch().validate(LigerOptions(), _config(use_cpu=True))
    assert problems == [
        "patches[liger]: Liger kernels need a CUDA GPU, but training.use_cpu is true; remove liger from "
        "patches for CPU runs"
    ]


def test_no_cuda_is_a_problem(installed, cuda):
    installed()
    cuda(False)
    (problem,) = LigerPatch().validate(LigerOptions(), _config(use_cpu=None))
    assert problem.startswith("patches[liger]: Liger kernels need a CUDA GPU and none is visible")


def test_missing_liger_kernel_names_the_pip_command(installed, cuda):
    installed(liger=False)
    cuda(True)
    (problem,) = LigerPatch().validate(LigerOptions(), _config(use_cpu=False))
    assert "liger-kernel is not installed" in problem and PIP_INSTALL in problem
    # On a CPU run both problems are reported at once.
    problems = LigerPatch().validate(LigerOptions(), _config(use_cpu=True))
    assert len(problems) == 2 and PIP_INSTALL in problems[0] and "need a CUDA GPU" in problems[1]


def test_missing_triton_on_a_gpu_machine_is_a_problem(installed, cuda):
    installed(triton=False)
    cuda(True)
    (problem,) = LigerPatch().validate(LigerOptions(), _config(use_cpu=None))
    assert "needs triton" in problem


def test_gpu_machine_with_everything_installed_has_no_problem(installed, cuda):
    installed()
    cuda(True)
    assert LigerPatch().validate(LigerOptions(), _config(use_cpu=False)) == []


def test_ft_core_validate_rejects_liger_on_a_cpu_run(tmp_path: Path, tiny_model_dir, capsys):
    from ft_core.cli import main

    config = {
        "model": {"name_or_path": tiny_model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64},
        "patches": [{"name": "liger", "rope": False}],
        "training": {"output_dir": str(tmp_path / "out"), "use_cpu": True, "max_steps": 2},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    assert main(["validate", str(path)]) == 2
    assert (
        "patches[liger]: Liger kernels need a CUDA GPU, but training.use_cpu is true"
        in capsys.readouterr().err
    )

    config["patches"] = [{"name": "liger", "cross_entropy": True}]
    path.write_text(json.dumps(config))
    assert main(["validate", str(path)]) == 2
    assert "cross_entropy and fused_linear_cross_entropy are exclusive" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- model_type mapping
def _liger_monkey_patch_source() -> str:
    spec = importlib.util.find_spec("liger_kernel")
    if spec is None:
        pytest.skip("liger-kernel is not installed")
    return (
        Path(next(iter(spec.submodule_search_locations))) / "transformers" / "monkey_patch.py"
    ).read_text()


def _liger_mapping() -> dict[str, str]:
    """The installed liger-kernel's ``MODEL_TYPE_TO_APPLY_LIGER_FN`` (model type -> function name), read without
    importing it (importing liger needs triton)."""
    tree = ast.parse(_liger_monkey_patch_source())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and getattr(node.targets[0], "id", None) == "MODEL_TYPE_TO_APPLY_LIGER_FN"
        ):
            return {
                key.value: value.id for key, value in zip(node.value.keys, node.value.values, strict=True)
            }
    raise AssertionError("liger-kernel has no MODEL_TYPE_TO_APPLY_LIGER_FN")


def test_documented_model_types_are_the_family_types_liger_patches():
    mapping = _liger_mapping()
    missing = [model_type for model_type in SUPPORTED_MODEL_TYPES if model_type not in mapping]
    assert missing == [], f"liger-kernel has no patch for {missing}"
    for model_type in ("llama", "qwen2", "qwen3", "qwen3_moe", "mistral", "mixtral", "gemma", "gemma2"):
        assert model_type in SUPPORTED_MODEL_TYPES
    for model_type in ("gemma3_text", "gemma3", "phi3", "olmo2", "glm4", "qwen2_vl", "qwen2_5_vl"):
        assert model_type in SUPPORTED_MODEL_TYPES
    for model_type in ("llava", "paligemma", "deepseek_v2", "deepseek_v3"):
        assert model_type in SUPPORTED_MODEL_TYPES
    assert "qwen2_moe" not in mapping  # ft-core-qwen covers it, Liger 0.8.5 does not: it must not be listed


def _apply(**defaults):
    """A stand-in ``apply_liger_kernel_to_*`` with these keyword defaults (and ``model``)."""
    import inspect

    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
        for name, value in {**defaults, "model": None}.items()
    ]

    def apply(**kwargs):
        return None

    apply.__signature__ = inspect.Signature(parameters)
    return apply


def test_apply_kwargs_follow_the_liger_function_signature():
    llama = _apply(
        rope=True, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=True, swiglu=True
    )
    assert patch_module.apply_kwargs(llama, LigerOptions(rope=False), fused_linear_cross_entropy=False) == {
        "rope": False,
        "cross_entropy": False,
        "fused_linear_cross_entropy": False,
        "rms_norm": True,
        "swiglu": True,
    }
    # Gemma's gated MLP is GEGLU: the swiglu option drives it.
    gemma = _apply(rope=True, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=True, geglu=True)
    kwargs = patch_module.apply_kwargs(gemma, LigerOptions(swiglu=False), fused_linear_cross_entropy=True)
    assert (
        kwargs["geglu"] is False and "swiglu" not in kwargs and kwargs["fused_linear_cross_entropy"] is True
    )
    # A kernel Liger keeps off by default for the architecture (RoPE on GLM-4, the fused loss on Granite) stays off.
    glm4 = _apply(
        rope=False, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=True, swiglu=True
    )
    assert patch_module.apply_kwargs(glm4, LigerOptions(), fused_linear_cross_entropy=True)["rope"] is False
    granite = _apply(
        rope=True, cross_entropy=True, fused_linear_cross_entropy=False, rms_norm=True, swiglu=True
    )
    options = LigerOptions(cross_entropy=True, fused_linear_cross_entropy=False)
    kwargs = patch_module.apply_kwargs(granite, options, fused_linear_cross_entropy=True)
    assert kwargs["fused_linear_cross_entropy"] is False and kwargs["cross_entropy"] is True


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="importing liger-kernel needs triton")
def test_apply_kwargs_fit_the_installed_liger_functions():
    import inspect

    functions = patch_module.liger_apply_functions()
    for model_type in SUPPORTED_MODEL_TYPES:
        apply = functions[model_type]
        kwargs = patch_module.apply_kwargs(apply, LigerOptions(), fused_linear_cross_entropy=True)
        inspect.signature(apply).bind(model=None, **kwargs)  # raises on an unknown keyword
        assert "rms_norm" in kwargs or model_type == "llava", model_type


@pytest.mark.parametrize("model_type", ["starcoder2", "qwen2_moe"])
def test_unsupported_model_type_is_a_clear_error(tiny_tokenizer, model_type, cuda, installed, monkeypatch):
    from ft_core.testing.tiny import tiny_model

    cuda(True)
    installed()
    monkeypatch.setattr(patch_module, "liger_apply_functions", lambda: {"llama": None, "qwen2": None})
    model = tiny_model(tiny_tokenizer, model_type=model_type)
    with pytest.raises(FtCoreError) as caught:
        LigerPatch().patch_model(model, LigerOptions())
    message = str(caught.value)
    assert f"model_type '{model_type}' is not supported by liger-kernel" in message
    assert "supported: llama, qwen2, qwen2_vl" in message and "Remove liger from patches" in message


def test_patching_without_cuda_is_a_clear_error(tiny_model, cuda):
    cuda(False)
    with pytest.raises(FtCoreError, match="need a CUDA GPU"):
        LigerPatch().patch_model(tiny_model, LigerOptions())
    assert "LigerRMSNorm" not in [m._get_name() for m in tiny_model.modules()]


@pytest.mark.skipif(importlib.util.find_spec("triton") is not None, reason="triton is installed here")
def test_patching_without_triton_is_a_clear_error(tiny_model, cuda):
    cuda(True)
    with pytest.raises(FtCoreError, match="needs triton"):
        LigerPatch().patch_model(tiny_model, LigerOptions())


def _forward_source(model_type: str) -> str:
    """The causal-LM forward of ``model_type`` in the installed transformers, without docstring, comments and
    decorators."""
    import inspect
    import re

    from transformers import AutoConfig, AutoModelForCausalLM

    config_class = type(AutoConfig.for_model(model_type))
    model_class = AutoModelForCausalLM._model_mapping[config_class]
    source = re.sub(r'"""[\s\S]*?"""', "", inspect.getsource(model_class.forward))
    source = re.sub(r"#.*", "", source).replace(
        "-> tuple | CausalLMOutputWithPast", "-> CausalLMOutputWithPast"
    )
    return "\n".join(
        line for line in source.splitlines() if line.strip() and not line.strip().startswith("@")
    )


def test_own_fused_forward_model_types_have_llamas_forward():
    """The plugin's forward replaces these model types' forward: each must be transformers' Llama one."""
    llama = _forward_source("llama")
    for model_type in patch_module.FUSED_FORWARD_MODEL_TYPES:
        assert _forward_source(model_type) == llama, f"{model_type}'s forward is not Llama's"
    for model_type in ("gemma2", "mixtral", "qwen3_moe"):  # softcapping / router loss: Liger's own forward
        assert _forward_source(model_type) != llama


def test_fused_forward_fits_the_transformers_causal_lm_forwards(tiny_tokenizer):
    from ft_core.testing.tiny import tiny_model
    from ft_core_liger.forward import forward_fits

    for model_type in ("llama", "qwen2", "qwen3"):
        assert forward_fits(tiny_model(tiny_tokenizer, model_type=model_type, head_dim=8))

    class OldStyle:
        def forward(self, input_ids=None, past_key_values=None, labels=None):  # a transformers 4.x signature
            return None

    assert not forward_fits(OldStyle()), "older transformers get Liger's own fused forward"
