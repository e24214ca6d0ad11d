"""The deepspeed plugin without training: its options, the DeepSpeed config it generates, the combinations it
refuses, and the training arguments it sets (2-process runs: ``test_deepspeed_gloo.py``)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

import ft_core_deepspeed
from ft_core.api import ConfigError, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_deepspeed import DeepSpeedOptions, deepspeed_config

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None


def test_registration_is_import_light():
    check_import_light("ft_core_deepspeed")


def test_registers_a_strategy_section(make_plugins):
    section = make_plugins(ft_core_deepspeed).get("config_section", "deepspeed")
    assert section.schema is DeepSpeedOptions and section.strategy


def test_zero3_config_gathers_weights_on_save_and_offloads_on_request():
    config = deepspeed_config(DeepSpeedOptions(stage=3, offload_optimizer=True, offload_params=True))
    zero = config["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": True} == zero["offload_param"]
    assert config["zero_force_ds_cpu_optimizer"] is False
    assert config["train_micro_batch_size_per_gpu"] == "auto" and config["bf16"] == {"enabled": "auto"}


def test_zero2_config_has_fixed_buckets_and_no_offload_by_default():
    zero = deepspeed_config(DeepSpeedOptions(stage=2))["zero_optimization"]
    assert zero["stage"] == 2 and zero["allgather_bucket_size"] == zero["reduce_bucket_size"] == 500_000_000
    assert "offload_optimizer" not in zero and "offload_param" not in zero
    assert "stage3_gather_16bit_weights_on_model_save" not in zero


def test_options_are_checked():
    with pytest.raises(OptionsError, match="offload_params: parameter offload needs stage: 3"):
        DeepSpeedOptions(stage=2, offload_params=True)
    with pytest.raises(OptionsError, match="bucket_size"):
        DeepSpeedOptions(bucket_size=0)


def _validate(make_config, make_plugins, **sections):
    from ft_core.engine.config.loader import load_config
    from ft_core.engine.config.validate import validate

    plugins = make_plugins(
        ft_core_deepspeed,
        "ft_core_sft",
        "ft_core_lora",
        "ft_core_full",
        "ft_core_adamw",
        "ft_core_bitsandbytes",
        "ft_core_galore",
    )
    raw, sources = load_config(str(make_config(**sections)), [])
    return validate(raw, plugins, sources)


def _problems(make_config, make_plugins, **sections) -> str:
    with pytest.raises(ConfigError) as error:
        _validate(make_config, make_plugins, **sections)
    return str(error.value)


def test_quantization_under_zero3_optimizers_and_cpu_offload_are_refused(make_config, make_plugins):
    qlora = _problems(
        make_config,
        make_plugins,
        distributed={"strategy": "deepspeed"},
        quantization={"method": "bitsandbytes"},
    )
    assert "ZeRO-3 cannot partition quantized weights; use deepspeed.stage: 2" in qlora
    offload = _problems(
        make_config,
        make_plugins,
        distributed={"strategy": "deepspeed"},
        deepspeed={"offload_optimizer": True},
        adapter={"method": "full"},
        optimizer={"name": "galore"},
    )
    assert "optimizer: galore needs whole weight matrices" in offload
    assert "offloading needs a CUDA GPU" in offload


@pytest.mark.skipif(HAS_DEEPSPEED, reason="deepspeed is installed")
def test_a_missing_deepspeed_names_the_extra(make_config, make_plugins):
    problems = _problems(make_config, make_plugins, distributed={"strategy": "deepspeed"})
    assert "pip install 'ft-core-deepspeed[deepspeed]'" in problems


@pytest.mark.skipif(not HAS_DEEPSPEED, reason="deepspeed is not installed")
def test_the_strategy_sets_the_training_arguments(make_config, make_plugins):
    config = _validate(
        make_config, make_plugins, distributed={"strategy": "deepspeed"}, deepspeed={"stage": 2}
    )
    recorded: dict = {}
    run = SimpleNamespace(
        config=config,
        process=SimpleNamespace(world_size=1),
        record=lambda key, value, reason="": recorded.update({key: value}),
    )
    arguments: dict = {}
    ft_core_deepspeed.ft_adjust_training_arguments(arguments=arguments, run=run)
    assert arguments["deepspeed"]["zero_optimization"]["stage"] == 2
    assert recorded["deepspeed"] == {"stage": 2, "offload_optimizer": False, "offload_params": False}
