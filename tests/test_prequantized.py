"""Pre-quantized checkpoints (GPTQ, AWQ, AQLM): detected from config.json, refused for whole-model tuning, with a
quantization section, and without their backend (rule model.prequantized), all before anything loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ft_core.cli import main
from ft_core.engine.models import prequantized


def _quantized_folder(tiny_model_dir: str, tmp_path: Path, method: str) -> str:
    """A copy of the tiny model whose config.json carries a ``method`` quantization_config (no real weights)."""
    folder = tmp_path / f"tiny-{method}"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": method, "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def _validate(make_config, capsys, folder: str, **sections) -> tuple[int, str]:
    path = make_config(model={"name_or_path": folder}, **sections)
    return main(["validate", str(path)]), capsys.readouterr().err


@pytest.mark.parametrize("method", ["gptq", "awq", "aqlm"])
def test_detected_from_the_quantization_config(tiny_model_dir, tmp_path, method):
    assert prequantized.quant_method(_quantized_folder(tiny_model_dir, tmp_path, method)) == method
    assert prequantized.quant_method(tiny_model_dir) is None


@pytest.mark.parametrize(
    ("method", "install"),
    [
        ("gptq", "pip install gptqmodel optimum"),
        ("awq", "pip install gptqmodel"),
        ("aqlm", "pip install 'aqlm[gpu,cpu]>=1.0.2'"),
    ],
)
def test_a_missing_backend_is_named_before_loading(
    tiny_model_dir, tmp_path, make_config, capsys, monkeypatch, method, install
):
    monkeypatch.setattr(prequantized.importlib.util, "find_spec", lambda name, *a: None)
    folder = _quantized_folder(tiny_model_dir, tmp_path, method)
    status, err = _validate(make_config, capsys, folder)
    assert status == 2
    assert f"is a pre-quantized {method.upper()} checkpoint" in err and install in err
    assert "(rule model.prequantized)" in err


@pytest.mark.parametrize("adapter", ["full", "freeze"])
def test_whole_model_tuning_is_refused_with_the_reason(
    tiny_model_dir, tmp_path, make_config, capsys, adapter
):
    pytest.importorskip(f"ft_core_{adapter}")
    folder = _quantized_folder(tiny_model_dir, tmp_path, "gptq")
    status, err = _validate(make_config, capsys, folder, adapter={"method": adapter})
    assert status == 2
    assert f"cannot be trained with {adapter}" in err and "lora" in err


def test_a_quantization_section_is_refused(tiny_model_dir, tmp_path, make_config, capsys):
    pytest.importorskip("ft_core_bitsandbytes")
    folder = _quantized_folder(tiny_model_dir, tmp_path, "awq")
    status, err = _validate(make_config, capsys, folder, quantization={"method": "bitsandbytes"})
    assert (
        status == 2 and "cannot be quantized again with bitsandbytes; remove the quantization section" in err
    )


def test_lora_on_an_installed_backend_passes(tiny_model_dir, tmp_path, make_config, capsys, monkeypatch):
    monkeypatch.setattr(prequantized.importlib.util, "find_spec", lambda name, *a: object())
    folder = _quantized_folder(tiny_model_dir, tmp_path, "gptq")
    status, err = _validate(make_config, capsys, folder)
    assert status == 0, err
