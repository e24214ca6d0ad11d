"""``ft-core export``: the merged model loads with plain transformers and gives base + adapter's logits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ft_core_export
from ft_core.api import FtCoreError
from ft_core.testing.import_light import check_import_light
from ft_core_export.merge import EXPORT_RECORD


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    batch = tokenizer(["Who are you?", "Hello there, tiny model"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def test_registers_export(make_plugins: Any) -> None:
    plugins = make_plugins(ft_core_export, distribution="ft-core-export")
    assert plugins.names("cli_command").count("export") == 1
    assert plugins.registration("cli_command", "export").distribution == "ft-core-export"


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_export")


def test_lora_export_matches_base_plus_adapter(lora_run: Path, command_args: Any, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    assert ft_core_export.ExportCommand().run(command_args(lora_run, output=str(out))) == 0
    assert list(out.glob("*.safetensors")) and not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()  # plain transformers, no ft-core, no peft
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    manifest = json.loads((lora_run / "manifest.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(manifest["base_model"]["path"], dtype=torch.float32)
    base_logits = _logits(base, tokenizer)
    reference = PeftModel.from_pretrained(base, str(lora_run / "model")).eval()  # unmerged: base + adapter
    expected = _logits(reference, tokenizer)
    assert not torch.allclose(expected, base_logits, atol=1e-3), "the adapter should change the logits"
    torch.testing.assert_close(_logits(merged, tokenizer), expected, atol=1e-4, rtol=1e-4)
    # the chat template travels with the tokenizer
    run_tokenizer = AutoTokenizer.from_pretrained(str(lora_run / "model"))
    assert tokenizer.chat_template == run_tokenizer.chat_template
    messages = [{"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        run_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    )
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert record["adapter"] == "lora" and record["dequantized_from"] is None
    assert merged.generation_config.eos_token_id is not None


def test_full_run_is_resaved(full_run: Path, command_args: Any, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "exported"
    ft_core_export.ExportCommand().run(command_args(full_run, output=str(out), max_shard_size="100KB"))
    assert len(list(out.glob("model-*.safetensors"))) > 1, "the shard size is honoured"
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    exported = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    trained = AutoModelForCausalLM.from_pretrained(str(full_run / "model")).eval()
    torch.testing.assert_close(_logits(exported, tokenizer), _logits(trained, tokenizer))


def _quantized_copy(run: Path, tmp_path: Path, quantizer: str = "nf4") -> Path:
    """The run folder as if it had trained on a ``quantizer``-quantized base (its manifest names the quantizer)."""
    copy = tmp_path / "qlora-run"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["components"].append(
        {
            "section": "quantization",
            "kind": "quantizer",
            "name": quantizer,
            "distribution": "x",
            "version": "0",
        }
    )
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("quantizer", ["nf4", "hqq", "torchao"])
def test_quantized_run_is_refused_with_what_to_do(
    lora_run: Path, command_args: Any, tmp_path: Path, quantizer: str
) -> None:
    copy = _quantized_copy(lora_run, tmp_path, quantizer)
    with pytest.raises(FtCoreError, match=f"{quantizer}-quantized base") as caught:
        ft_core_export.ExportCommand().run(command_args(copy, output=str(tmp_path / "out")))
    assert "--dequantize" in str(caught.value) and "retrain without" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_dequantize_merges_into_the_unquantized_base(
    lora_run: Path, command_args: Any, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    copy = _quantized_copy(lora_run, tmp_path)
    out = tmp_path / "out"
    ft_core_export.ExportCommand().run(command_args(copy, output=str(out), dequantize=True))
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert record["dequantized_from"] == "nf4"
    assert not getattr(AutoModelForCausalLM.from_pretrained(str(out)).config, "quantization_config", None)


@pytest.mark.parametrize("dequantize", [False, True])
def test_a_pre_quantized_base_is_refused_before_loading(
    lora_run: Path, command_args: Any, tmp_path: Path, dequantize: bool
) -> None:
    copy = tmp_path / "gptq-run"
    shutil.copytree(lora_run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    base = tmp_path / "gptq-base"
    shutil.copytree(manifest["base_model"]["path"], base)
    config = json.loads((base / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}  # no gptqmodel needed: nothing loads
    (base / "config.json").write_text(json.dumps(config))
    manifest["base_model"]["path"] = str(base)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FtCoreError, match="pre-quantized gptq checkpoint") as caught:
        ft_core_export.ExportCommand().run(
            command_args(copy, output=str(tmp_path / "out"), dequantize=dequantize)
        )
    assert "PeftModel.from_pretrained" in str(caught.value) and not (tmp_path / "out").exists()


def test_existing_output_is_kept_without_overwrite(lora_run: Path, command_args: Any, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FtCoreError, match="--overwrite"):
        ft_core_export.ExportCommand().run(command_args(lora_run, output=str(out)))
    assert (out / "keep.txt").read_text() == "mine"


def test_gguf_without_llama_cpp_says_how(
    lora_run: Path, command_args: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    with pytest.raises(FtCoreError, match=r"no llama\.cpp checkout given"):
        ft_core_export.ExportCommand().run(command_args(lora_run, output=str(tmp_path / "o"), gguf="f16"))


@pytest.mark.parametrize("make", ["missing", "empty", "model"])
def test_a_folder_that_is_not_a_run(make: str, tmp_path: Path, tiny_model_dir_session: str) -> None:
    """Through the real CLI: `ft-core: error: ...` on stderr and exit status 2, before any model loads."""
    target = {"missing": tmp_path / "nope", "empty": tmp_path, "model": Path(tiny_model_dir_session)}[make]
    ft_core = Path(sys.executable).with_name("ft-core")  # the plugin is pip-installed (.ci/setup does it)
    done = subprocess.run([str(ft_core), "export", str(target)], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "ft-core: error:" in done.stderr and "Traceback" not in done.stderr
    expected = {
        "missing": "no such run folder",
        "empty": "not a run folder",
        "model": "Hugging Face model folder",
    }
    assert expected[make] in done.stderr
