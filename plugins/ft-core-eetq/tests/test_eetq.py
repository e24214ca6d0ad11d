"""The eetq quantizer on the CPU: options, and every refusal before anything loads (EETQ is CUDA-only)."""

from __future__ import annotations

import importlib.util

import pytest

import ft_core_eetq
from ft_core.api import OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core.testing.quantizers import quantizer_config
from ft_core_eetq import EetqOptions, EetqQuantizer, installation_problems
from ft_core_eetq import quantizer as eetq_quantizer


def test_registers_as_eetq(make_plugins):
    quantizer = make_plugins(ft_core_eetq).get("quantizer", "eetq")
    assert isinstance(quantizer, EetqQuantizer) and quantizer.trains_with_adapters_only
    assert not quantizer.quantizes_after_load


def test_registration_is_import_light():
    check_import_light("ft_core_eetq")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bits": 4}, "bits must be 8 .* hqq"),
        ({"skip_modules": [""]}, "skip_modules must be module names"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        EetqOptions(**values)


def test_a_cpu_run_is_refused_saying_what_runs_there():
    problems = EetqQuantizer().validate(EetqOptions(), quantizer_config(use_cpu=True))
    assert "EETQ's int8 kernels need a CUDA GPU, but training.use_cpu is true" in problems[0]
    assert "hqq" in problems[0] and "bitsandbytes" in problems[0]


def test_no_visible_gpu_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (hardware, *_) = EetqQuantizer().validate(EetqOptions(), quantizer_config())
    assert "need a CUDA GPU, and none is visible" in hardware


def test_missing_packages_and_kernel_are_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n in ("kernels", "eetq") else real(n, *a)
    )
    problems = installation_problems()
    assert any("pip install 'kernels>=0.11'" in p for p in problems)
    assert any("github.com/NetEase-FuXi/EETQ" in p for p in problems)
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object())
    monkeypatch.setattr(eetq_quantizer, "_kernel_cached", lambda: False)
    (problem,) = installation_problems()
    assert "kernels-community/quantization-eetq in the Hugging Face cache" in problem


def test_validate_refuses_a_cpu_config_with_cuda_gpu_in_the_message(make_config, capsys):
    from ft_core.cli import main

    path = make_config(quantization={"method": "eetq"})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "CUDA GPU" in err and "quantization.method" in err


def test_full_tuning_is_refused(make_config, capsys):
    pytest.importorskip("ft_core_full")
    from ft_core.cli import main

    path = make_config(quantization={"method": "eetq"}, adapter={"method": "full"})
    assert main(["validate", str(path)]) == 2
    assert "eetq-quantized weights cannot be trained with adapter.method: full" in capsys.readouterr().err
