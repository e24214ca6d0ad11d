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
def _liger_monkey_patch_functions() -> dict[str, list[str]]:
    """Functions of the installed liger_kernel/transformers/monkey_patch.py and their parameters, read without
    importing it (importing liger needs triton)."""
    spec = importlib.util.find_spec("liger_kernel")
    if spec is None:
        pytest.skip("liger-kernel is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "transformers" / "monkey_patch.py"
    tree = ast.parse(source.read_text())
    return {
        node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)
    }


def test_supported_model_types_map_to_liger_instance_patch_functions():
    assert set(SUPPORTED_MODEL_TYPES) == {"llama", "qwen2", "qwen3"}
    functions = _liger_monkey_patch_functions()
    for model_type, name in SUPPORTED_MODEL_TYPES.items():
        assert name == f"apply_liger_kernel_to_{model_type}"
        assert name in functions, f"liger-kernel has no {name}"
        for parameter in (
            "rope",
            "cross_entropy",
            "fused_linear_cross_entropy",
            "rms_norm",
            "swiglu",
            "model",
        ):
            assert parameter in functions[name], f"{name} has no {parameter!r} parameter"


@pytest.mark.parametrize("model_type", ["mistral", "gemma"])
def test_unsupported_model_type_is_a_clear_error(tiny_tokenizer, model_type):
    from ft_core.testing.tiny import tiny_model

    overrides = {"head_dim": 8} if model_type == "gemma" else {}
    model = tiny_model(tiny_tokenizer, model_type=model_type, **overrides)
    with pytest.raises(FtCoreError) as caught:
        LigerPatch().patch_model(model, LigerOptions())
    message = str(caught.value)
    assert f"model_type '{model_type}'" in message
    assert "supported model types: llama, qwen2, qwen3" in message


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


def test_fused_forward_fits_the_transformers_causal_lm_forwards(tiny_tokenizer):
    from ft_core.testing.tiny import tiny_model
    from ft_core_liger.forward import forward_fits

    for model_type in SUPPORTED_MODEL_TYPES:
        assert forward_fits(tiny_model(tiny_tokenizer, model_type=model_type, head_dim=8))

    class OldStyle:
        def forward(self, input_ids=None, past_key_values=None, labels=None):  # a transformers 4.x signature
            return None

    assert not forward_fits(OldStyle()), "older transformers get Liger's own fused forward"
