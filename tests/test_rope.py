"""``model.rope_scaling``: validation, what reaches the model config, and a forward beyond the pretrained length."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ft_core.api.config import ModelSection, normalize_rope_scaling
from ft_core.api.errors import ConfigError, FtCoreError
from ft_core.bootstrap import load_plugins
from ft_core.engine.models.loader import apply_rope_scaling
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.runner import load_and_validate


def _config(**overrides):
    settings = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return AutoConfig.for_model("llama", **{**settings, **overrides})


# ---------------------------------------------------------------------------------------------- validation
def test_a_type_alone_is_shorthand_and_the_factor_defaults_to_null():
    assert normalize_rope_scaling("linear") == {"type": "linear", "factor": None}
    assert normalize_rope_scaling({"rope_type": "yarn", "factor": 4}) == {"type": "yarn", "factor": 4.0}
    assert ModelSection(rope_scaling="dynamic").rope_scaling == {"type": "dynamic", "factor": None}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ntk", r"rope_scaling.type: one of linear, dynamic, yarn, llama3, got 'ntk'"),
        ({"type": "linear", "factor": 0.5}, r"rope_scaling.factor: a number >= 1, got 0.5"),
        ({"type": "linear", "beta_fast": 32}, r"beta_fast not used by linear scaling \(it takes factor\)"),
    ],
)
def test_bad_values_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        normalize_rope_scaling(value)


def test_ft_core_validate_reports_a_bad_rope_scaling(make_config):
    path = make_config(model={"rope_scaling": {"type": "longrope", "factor": 2}})
    with pytest.raises(ConfigError, match=r"model: rope_scaling.type: one of linear"):
        load_and_validate(str(path), [], load_plugins())


# ---------------------------------------------------------------------------------------------- the config
def test_linear_scaling_with_a_given_factor_raises_the_position_limit():
    config = _config()
    line = apply_rope_scaling(config, {"type": "linear", "factor": 2.0}, cutoff_len=100)
    assert config.rope_parameters["rope_type"] == "linear" and config.rope_parameters["factor"] == 2.0
    assert config.rope_parameters["rope_theta"] == 10000.0  # the model's own base is kept
    assert config.max_position_embeddings == 128
    assert line == "rope scaling: linear, factor 2 (pretrained length 64, max_position_embeddings 128)"


def test_the_factor_defaults_to_cutoff_len_over_the_pretrained_length_rounded_up():
    config = _config()
    apply_rope_scaling(config, normalize_rope_scaling("yarn"), cutoff_len=150)
    assert config.rope_parameters["factor"] == 3.0
    assert config.rope_parameters["original_max_position_embeddings"] == 64
    assert config.max_position_embeddings == 192


def test_dynamic_keeps_the_pretrained_length_that_it_scales_from():
    config = _config()
    apply_rope_scaling(config, normalize_rope_scaling("dynamic"), cutoff_len=128)
    assert config.rope_parameters["rope_type"] == "dynamic" and config.rope_parameters["factor"] == 2.0
    assert config.max_position_embeddings == 64


def test_llama3_gets_llama_3_1_frequency_defaults():
    config = _config()
    apply_rope_scaling(config, {"type": "llama3", "factor": 8.0}, cutoff_len=64)
    parameters = config.rope_parameters
    assert (parameters["low_freq_factor"], parameters["high_freq_factor"]) == (1.0, 4.0)
    assert parameters["original_max_position_embeddings"] == 64 and config.max_position_embeddings == 512


def test_a_cutoff_longer_than_the_scaled_length_is_noted():
    line = apply_rope_scaling(_config(), {"type": "linear", "factor": 2.0}, cutoff_len=300)
    assert line.endswith("; cutoff_len 300 is longer than the 128 positions it covers")


def test_a_different_scaling_than_the_models_own_is_refused():
    config = _config(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    with pytest.raises(FtCoreError, match="already uses linear RoPE scaling"):
        apply_rope_scaling(config, {"type": "yarn", "factor": 4.0}, cutoff_len=64)


def test_nothing_happens_without_rope_scaling():
    config = _config()
    assert apply_rope_scaling(config, None, cutoff_len=1000) is None
    assert config.rope_parameters["rope_type"] == "default" and config.max_position_embeddings == 64


# ---------------------------------------------------------------------------------------------- the model
def test_linear_scaling_stretches_positions_and_a_longer_forward_works():
    """With linear scaling by 2, position 2p gets the rotation of position p in the unscaled model."""
    plain = _config()
    scaled = _config()
    apply_rope_scaling(scaled, {"type": "linear", "factor": 2.0}, cutoff_len=128)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(scaled).eval()
    reference = AutoModelForCausalLM.from_config(plain).model.rotary_emb
    probe = torch.zeros(1, 1, 32)
    cos_scaled, _ = model.model.rotary_emb(probe, torch.tensor([[0, 2, 4, 6]]))
    cos_plain, _ = reference(probe, torch.tensor([[0, 1, 2, 3]]))
    torch.testing.assert_close(cos_scaled, cos_plain)
    ids = torch.randint(0, 128, (1, 120))  # almost twice the pretrained length
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, 120, 128) and torch.isfinite(logits).all()


def test_yarn_changes_the_rotation_and_the_attention_scaling():
    scaled = _config()
    apply_rope_scaling(scaled, {"type": "yarn", "factor": 4.0}, cutoff_len=256)
    model = AutoModelForCausalLM.from_config(scaled).eval()
    assert model.model.rotary_emb.rope_type == "yarn"
    assert model.model.rotary_emb.attention_scaling > 1.0
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.randint(0, 128, (1, 200))).logits).all()


def test_the_run_loads_the_model_with_the_scaling_and_records_it(make_config, tmp_path, capsys):
    plugins = load_plugins()
    path = make_config(model={"rope_scaling": {"type": "linear", "factor": 2}})
    run = EngineRun.from_config(load_and_validate(str(path), [], plugins), plugins, tmp_path)
    model = run.load_model("reference", trainable=False)
    assert model.config.rope_parameters["rope_type"] == "linear"
    assert model.config.rope_parameters["factor"] == 2.0
    assert model.config.max_position_embeddings == 2048  # the tiny model is pretrained for 1024
    assert run.facts["rope_scaling"].startswith("rope scaling: linear, factor 2")
    assert "rope scaling: linear, factor 2" in capsys.readouterr().err


def test_chatting_with_an_adapter_run_loads_the_base_model_with_the_runs_scaling(tiny_model_dir, tmp_path):
    """``ft-core chat RUN`` of a LoRA run: the base model gets the run's ``model.rope_scaling`` (from the run's
    saved config.yaml) before the adapter is merged into it."""
    import json

    import yaml
    from peft import LoraConfig, get_peft_model

    from ft_core.engine.inference.target import resolve_chat_target

    run = tmp_path / "run"
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj"])
    )
    peft_model.save_pretrained(run / "model")
    manifest = {
        "status": "completed",
        "components": [{"section": "adapter", "name": "lora"}],
        "base_model": {"path": tiny_model_dir, "name_or_path": tiny_model_dir},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    config = {"model": {"name_or_path": tiny_model_dir, "rope_scaling": {"type": "linear", "factor": 4}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    pretrained = AutoConfig.from_pretrained(tiny_model_dir).max_position_embeddings

    model = resolve_chat_target(str(run), load_plugins()).load_model(torch.float32)
    assert model.config.rope_parameters["rope_type"] == "linear"
    assert model.config.rope_parameters["factor"] == 4
    assert model.config.max_position_embeddings == 4 * pretrained

    # Without rope_scaling in the run's config the base model loads as saved.
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": tiny_model_dir}}))
    model = resolve_chat_target(str(run), load_plugins()).load_model(torch.float32)
    assert model.config.rope_parameters.get("rope_type", "default") == "default"
    assert model.config.max_position_embeddings == pretrained
