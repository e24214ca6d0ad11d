"""The fsdp plugin on the CPU: its options, the fsdp_config it gives the trainer, the combinations it refuses, and
how ``distributed.strategy: fsdp`` selects it (GPU runs: ``test_fsdp_gpu.py``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

import ft_core_fsdp
from ft_core.api import ConfigError, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core_fsdp import FsdpOptions, fsdp_config


def test_registration_is_import_light():
    check_import_light("ft_core_fsdp")


def test_registers_a_strategy_section(make_plugins):
    plugins = make_plugins(ft_core_fsdp)
    section = plugins.get("config_section", "fsdp")
    assert section.schema is FsdpOptions and section.strategy


def test_options_give_an_fsdp2_config():
    assert fsdp_config(FsdpOptions()) == {
        "version": 2,
        "reshard_after_forward": True,
        "cpu_offload": False,
        "state_dict_type": "SHARDED_STATE_DICT",
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    }
    config = fsdp_config(
        FsdpOptions(
            reshard_after_forward=False, cpu_offload=True, checkpoints="full", wrap=("LlamaDecoderLayer",)
        )
    )
    assert config["state_dict_type"] == "FULL_STATE_DICT" and config["cpu_offload"] is True
    assert config["reshard_after_forward"] is False
    assert config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    with pytest.raises(OptionsError, match="wrap: class names"):
        FsdpOptions(wrap=("not a class",))


def test_transformers_reads_the_config_as_fsdp2():
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir="unused",
        fsdp=True,
        fsdp_config=fsdp_config(FsdpOptions(cpu_offload=True)),
        report_to="none",
    )
    plugin_args = args.fsdp_plugin_args
    assert plugin_args["fsdp_version"] == 2 and plugin_args["cpu_offload"] is True
    assert (
        plugin_args["state_dict_type"] == "SHARDED_STATE_DICT"
        and plugin_args["reshard_after_forward"] is True
    )


def _validate(make_config, make_plugins, **sections):
    from ft_core.engine.config.loader import load_config
    from ft_core.engine.config.validate import validate

    plugins = make_plugins(
        ft_core_fsdp,
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


def test_the_cpu_is_refused_because_accelerate_would_fall_back_to_ddp(make_config, make_plugins):
    problems = _problems(make_config, make_plugins, distributed={"strategy": "fsdp"})
    assert "needs a CUDA GPU" in problems and "silently train with DDP" in problems


def test_quantization_and_whole_matrix_optimizers_are_refused(make_config, make_plugins):
    qlora = _problems(
        make_config, make_plugins, distributed={"strategy": "fsdp"}, quantization={"method": "bitsandbytes"}
    )
    assert "quantization: bitsandbytes: FSDP2 does not shard quantized" in qlora
    galore = _problems(
        make_config,
        make_plugins,
        distributed={"strategy": "fsdp"},
        adapter={"method": "full"},
        optimizer={"name": "galore"},
    )
    assert "optimizer: galore needs whole weight matrices" in galore


def test_the_section_needs_the_strategy(make_config, make_plugins):
    problems = _problems(make_config, make_plugins, fsdp={"cpu_offload": True})
    assert "fsdp: its options apply only under distributed.strategy: fsdp" in problems


def test_an_unknown_strategy_names_its_plugin(make_config, make_plugins):
    problems = _problems(make_config, make_plugins, distributed={"strategy": "deepspeed"})
    assert "'deepspeed' is not an installed strategy (pip install ft-core-deepspeed)" in problems


def test_the_strategy_activates_the_plugin_and_sets_the_training_arguments(
    make_config, make_plugins, monkeypatch
):
    from ft_core.engine.config.activation import active_plugins

    monkeypatch.setattr("ft_core_fsdp.options._cuda_available", lambda: True)
    config = _validate(
        make_config, make_plugins, distributed={"strategy": "fsdp", "nproc": 2}, training={"use_cpu": None}
    )
    plugins = make_plugins(ft_core_fsdp)
    reasons = {p.name: p.reason for p in active_plugins(config, plugins)}
    assert reasons["ft_core_fsdp"] == "distributed.strategy: fsdp"
    recorded = {}
    run = SimpleNamespace(
        config=config,
        process=SimpleNamespace(world_size=2),
        record=lambda key, value, reason="": recorded.update({key: value}),
    )
    arguments: dict = {}
    ft_core_fsdp.ft_adjust_training_arguments(arguments=arguments, run=run)
    assert arguments["fsdp"] is True and arguments["fsdp_config"]["version"] == 2
    assert recorded["fsdp"] == arguments["fsdp_config"]
    assert yaml.safe_dump(recorded)  # JSON/YAML-ready for the manifest
