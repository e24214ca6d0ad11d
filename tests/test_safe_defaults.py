"""Safe by default: no pickle weights unless allowed, remote code recorded when allowed, chat templates in a sandbox,
YAML without Python tags, and no value read from the environment (an API key) written into the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ft_core.api.errors import ConfigError, FtCoreError
from ft_core.bootstrap import load_plugins
from ft_core.cli import main
from ft_core.engine.config.loader import load_config
from ft_core.engine.inference.target import resolve_chat_target
from ft_core.engine.run.output import write_resolved_config
from ft_core.engine.run.runner import load_and_validate
from ft_core.engine.templates.render import render


def _pickle_only(folder: Path, weights: str, pickled: str) -> None:
    """Turn ``folder``'s safetensors ``weights`` into the pickle file ``pickled`` (as old checkpoints ship)."""
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / weights)), str(folder / pickled))
    (folder / weights).unlink()


def test_a_model_with_only_pickle_weights_loads_only_when_allowed(
    make_config, tiny_model_dir, tmp_path, capsys
):
    _pickle_only(Path(tiny_model_dir), "model.safetensors", "pytorch_model.bin")
    path = make_config(training={"max_steps": 1})
    assert main(["validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert (
        f"model.allow_pickle: the model in {tiny_model_dir!r} has only pickle weight files (pytorch_model.bin)"
        in error
    )
    assert "set model.allow_pickle: true in the run's config if you trust these files" in error
    target = resolve_chat_target(
        tiny_model_dir, load_plugins()
    )  # chat and serve load a plain folder the same way
    with pytest.raises(FtCoreError, match=r"has only pickle weight files \(pytorch_model.bin\)"):
        target.load_model(None)
    assert main(["run", str(path), "model.allow_pickle=true", "model.trust_remote_code=true"]) == 0
    assert (
        "model.allow_pickle: true: loading pickle weight files of the model (pytorch_model.bin"
        in capsys.readouterr().err
    )
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert (
        manifest["base_model"]["allow_pickle"] is True and manifest["base_model"]["trust_remote_code"] is True
    )


def test_the_default_run_records_no_consent_and_loads_safetensors_only(make_config, tmp_path, monkeypatch):
    import transformers

    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("use_safetensors"))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    assert main(["run", str(make_config(training={"max_steps": 1}))]) == 0
    assert seen == [True], "transformers is told to load safetensors only"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert set(manifest["base_model"]) == {"name_or_path", "path"}


def test_an_adapter_with_only_pickle_weights_is_refused(make_config, tmp_path, capsys):
    adapter = tmp_path / "old-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    assert main(["validate", str(make_config(model={"adapters": [str(adapter)]}))]) == 2
    assert (
        f"the adapter in {str(adapter)!r} has only pickle weight files (adapter_model.bin)"
        in capsys.readouterr().err
    )


def test_chat_templates_render_in_a_sandbox(tiny_tokenizer):
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(FtCoreError, match="SecurityError"):
        render(tiny_tokenizer, escape, [{"role": "user", "content": "hi"}])
    mutate = "{% set m = messages %}{{ m.append({'role': 'x'}) }}"
    with pytest.raises(FtCoreError, match="SecurityError"):
        render(tiny_tokenizer, mutate, [{"role": "user", "content": "hi"}])


def test_yaml_python_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)
    assert not marker.exists()


def test_values_read_from_the_environment_stay_interpolations_in_the_run_folder(
    make_config, tmp_path, monkeypatch
):
    secret = "sk-do-not-write-me"
    monkeypatch.setenv("FT_CORE_TEST_SECRET", secret)
    path = make_config(
        template={"system": "${oc.env:FT_CORE_TEST_SECRET}", "kwargs": {"who": "${template.system}"}}
    )
    config = load_and_validate(str(path), ["training.max_steps=1"], load_plugins())
    assert config.template.system == secret and config.template.kwargs == {"who": secret}, (
        "the run uses the value"
    )
    write_resolved_config(tmp_path, config)
    text = (tmp_path / "config.yaml").read_text()
    assert secret not in text
    saved = yaml.safe_load(text)
    assert saved["template"] == {
        "system": "${oc.env:FT_CORE_TEST_SECRET}",
        "kwargs": {"who": "${template.system}"},
        **{k: v for k, v in saved["template"].items() if k not in ("system", "kwargs")},
    }
    assert saved["training"]["max_steps"] == 1, "the other values are written resolved"
    again = load_and_validate(str(tmp_path / "config.yaml"), [], load_plugins())
    assert again.template.system == secret, "the saved config reads the environment again"
