"""`ft-core import-lf`: LLaMA-Factory configs like those of its examples/ translated, the mapping table's coverage,
the generated docs page, and `ft-core validate`'s one message for a LLaMA-Factory file.

Each config below is written for these tests and names the LLaMA-Factory example (0.9.x `examples/`) it mirrors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from ft_core.api.config import CORE_SECTIONS
from ft_core.cli import main
from ft_core.engine.config.llamafactory_map import (
    BY_KEY,
    HF_TRAINING_FIELDS,
    LF_ARGUMENT_CLASSES,
    SETTINGS,
    TEMPLATE_NAMES,
    coverage,
    looks_like_llamafactory,
    mapping_markdown,
    translate,
)
from ft_core.engine.config.training_arguments import PASSTHROUGH

ROOT = Path(__file__).resolve().parents[1]

_COMMON: dict[str, Any] = {
    "model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507",
    "trust_remote_code": True,
    "do_train": True,
    "template": "qwen3_nothink",
    "cutoff_len": 2048,
    "max_samples": 1000,
    "preprocessing_num_workers": 16,
    "dataloader_num_workers": 4,
    "logging_steps": 10,
    "save_steps": 500,
    "plot_loss": True,
    "overwrite_output_dir": True,
    "save_only_model": False,
    "report_to": "none",
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 8,
    "learning_rate": 1.0e-4,
    "num_train_epochs": 3.0,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "bf16": True,
    "ddp_timeout": 180000000,
    "resume_from_checkpoint": None,
}

#: name -> (the LLaMA-Factory example it mirrors, the config)
EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "lora_sft": (
        "examples/train_lora/qwen3_lora_sft.yaml",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "dataset": "identity,alpaca_en_demo", "output_dir": "saves/qwen3-4b/lora/sft"},
    ),
    "qlora_sft": (
        "examples/train_qlora/qwen3_lora_sft_otfq.yaml",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "quantization_bit": 4, "quantization_method": "bnb", "dataset": "identity,alpaca_en_demo",
         "output_dir": "saves/qwen3-4b/lora/sft"},
    ),
    "full_sft": (
        "examples/train_full/qwen3_full_sft.yaml",
        {**_COMMON, "stage": "sft", "finetuning_type": "full", "dataset": "identity,alpaca_en_demo",
         "deepspeed": "examples/deepspeed/ds_z3_config.json", "learning_rate": 1.0e-5,
         "output_dir": "saves/qwen3-4b/full/sft"},
    ),
    "freeze_sft": (
        "examples/train_freeze/llama3_freeze_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "freeze", "freeze_trainable_layers": 2,
         "freeze_trainable_modules": "all", "dataset": "identity,alpaca_en_demo", "template": "llama3",
         "output_dir": "saves/llama3-8b/freeze/sft"},
    ),
    "pretrain": (
        "examples/train_lora/qwen3_lora_pretrain.yaml",
        {**_COMMON, "stage": "pt", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "dataset": "c4_demo", "output_dir": "saves/qwen3-4b/lora/pretrain"},
    ),
    "dpo": (
        "examples/train_lora/qwen3_lora_dpo.yaml",
        {**_COMMON, "stage": "dpo", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "pref_beta": 0.1, "pref_loss": "sigmoid", "dataset": "dpo_en_demo", "learning_rate": 5.0e-6,
         "output_dir": "saves/qwen3-4b/lora/dpo"},
    ),
    "kto": (
        "examples/train_lora/qwen3_lora_kto.yaml",
        {**_COMMON, "stage": "kto", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "pref_beta": 0.1, "kto_chosen_weight": 1.0, "dataset": "kto_en_demo", "output_dir": "saves/kto"},
    ),
    "reward": (
        "examples/train_lora/qwen3_lora_reward.yaml",
        {**_COMMON, "stage": "rm", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "dataset": "dpo_en_demo", "output_dir": "saves/qwen3-4b/lora/reward"},
    ),
    "ppo": (
        "examples/train_lora/llama3_lora_ppo.yaml (0.9.x)",
        {**_COMMON, "stage": "ppo", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "reward_model": "saves/llama3-8b/lora/reward", "dataset": "identity", "template": "llama3",
         "max_new_tokens": 512, "top_k": 0, "top_p": 0.9, "output_dir": "saves/llama3-8b/lora/ppo"},
    ),
    "multimodal": (
        "examples/train_lora/qwen3vl_lora_sft.yaml",
        {**_COMMON, "model_name_or_path": "Qwen/Qwen3-VL-4B-Instruct", "image_max_pixels": 262144,
         "video_max_pixels": 16384, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "dataset": "mllm_demo,identity,alpaca_en_demo", "template": "qwen2_vl",
         "output_dir": "saves/qwen3-vl-4b/lora/sft"},
    ),
    "deepspeed": (
        "examples/train_lora/qwen3_lora_sft_ds3.yaml",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "deepspeed": "examples/deepspeed/ds_z3_config.json", "dataset": "identity,alpaca_en_demo",
         "output_dir": "saves/qwen3-4b/lora/sft"},
    ),
    "galore": (
        "examples/extras/galore/llama3_full_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "full", "use_galore": True, "galore_layerwise": True,
         "galore_target": "mlp,self_attn", "galore_rank": 128, "galore_scale": 2.0, "dataset": "identity",
         "template": "llama3", "gradient_accumulation_steps": 1, "pure_bf16": True,
         "output_dir": "saves/llama3-8b/full/sft"},
    ),
    "apollo": (
        "examples/extras/apollo/llama3_full_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "full", "use_apollo": True, "apollo_layerwise": True,
         "apollo_target": "all", "apollo_rank": 128, "apollo_scale": 32.0, "apollo_scale_type": "channel",
         "dataset": "identity", "template": "llama3", "gradient_accumulation_steps": 1, "pure_bf16": True,
         "output_dir": "saves/llama3-8b/full/sft"},
    ),
    "badam": (
        "examples/extras/badam/llama3_full_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "full", "use_badam": True, "badam_mode": "layer",
         "badam_switch_mode": "ascending", "badam_switch_interval": 50, "badam_verbose": 2, "dataset": "identity",
         "template": "llama3", "output_dir": "saves/llama3-8b/full/sft"},
    ),
    "muon": (
        "examples/extras/muon/qwen2_full_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "full", "use_muon": True, "dataset": "identity",
         "template": "qwen", "output_dir": "saves/qwen2-0_5b/full/sft"},
    ),
    "pissa": (
        "examples/extras/pissa/llama3_lora_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "pissa_init": True, "pissa_iter": 16, "pissa_convert": True, "dataset": "identity", "template": "llama3",
         "output_dir": "saves/llama3-8b/lora/sft"},
    ),
    "loraplus": (
        "examples/extras/loraplus/llama3_lora_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "loraplus_lr_ratio": 16.0, "dataset": "identity", "template": "llama3",
         "output_dir": "saves/llama3-8b/lora/sft"},
    ),
    "orpo": (
        "examples/train_lora/llama3_lora_dpo.yaml (0.9.x) with pref_loss: orpo",
        {**_COMMON, "stage": "dpo", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "pref_beta": 0.1, "pref_loss": "orpo", "dataset": "dpo_en_demo", "template": "llama3",
         "learning_rate": 5.0e-6, "output_dir": "saves/llama3-8b/lora/dpo"},
    ),
    "simpo": (
        "examples/train_lora/llama3_lora_dpo.yaml (0.9.x) with pref_loss: simpo",
        {**_COMMON, "stage": "dpo", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "pref_beta": 2.0, "pref_loss": "simpo", "pref_ftx": 0.5, "dataset": "dpo_en_demo", "template": "llama3",
         "learning_rate": 5.0e-6, "output_dir": "saves/llama3-8b/lora/dpo"},
    ),
    "hqq": (
        "examples/train_qlora/llama3_lora_sft_otfq.yaml (0.9.x) with quantization_method: hqq",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "quantization_bit": 4, "quantization_method": "hqq", "dataset": "identity", "template": "llama3",
         "output_dir": "saves/llama3-8b/lora/sft"},
    ),
    "eetq": (
        "examples/train_qlora/llama3_lora_sft_otfq.yaml (0.9.x) with quantization_method: eetq",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "quantization_bit": 8, "quantization_method": "eetq", "dataset": "identity", "template": "llama3",
         "output_dir": "saves/llama3-8b/lora/sft"},
    ),
    "llama_pro": (
        "examples/extras/llama_pro/llama3_freeze_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "freeze", "use_llama_pro": True,
         "freeze_trainable_layers": 8, "freeze_trainable_modules": "all", "dataset": "identity",
         "template": "llama3", "output_dir": "saves/llama3-8b-pro/freeze/sft"},
    ),
    "mod": (
        "examples/extras/mod/llama3_full_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "full", "mixture_of_depths": "convert", "dataset": "identity",
         "template": "llama3", "optim": "paged_adamw_8bit", "pure_bf16": True,
         "output_dir": "saves/llama3-8b-mod/full/sft"},
    ),
    "longlora": (
        "examples/extras/longlora/llama2_lora_sft.yaml (0.9.x)",
        {**_COMMON, "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_target": "all",
         "shift_attn": True, "dataset": "identity", "template": "llama2",
         "output_dir": "saves/llama2-7b/lora/sft"},
    ),
    "inference": (
        "examples/inference/qwen3_lora_sft.yaml",
        {"model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507", "adapter_name_or_path": "saves/qwen3-4b/lora/sft",
         "template": "qwen3_nothink", "infer_backend": "huggingface", "trust_remote_code": True},
    ),
    "merge": (
        "examples/merge_lora/qwen3_lora_sft.yaml",
        {"model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507", "adapter_name_or_path": "saves/qwen3-4b/lora/sft",
         "template": "qwen3_nothink", "trust_remote_code": True, "export_dir": "saves/qwen3_sft_merged",
         "export_size": 5, "export_device": "cpu", "export_legacy_format": False},
    ),
}  # fmt: skip


def _accounted(lf: dict[str, Any], result: Any) -> None:
    """Every key of the LLaMA-Factory config is carried over, listed with a reason, or flagged unknown."""
    seen = (
        [k for k, _, _ in result.mapped] + [k for k, _, _ in result.unmapped] + [k for k, _ in result.unknown]
    )
    assert sorted(seen) == sorted(lf), set(lf) ^ set(seen)
    assert all(why for _, _, why in result.unmapped)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_key_is_accounted_for(name: str) -> None:
    lf = EXAMPLES[name][1]
    result = translate(lf)
    _accounted(lf, result)
    assert not result.unknown


def test_lora_sft() -> None:
    result = translate(EXAMPLES["lora_sft"][1])
    config = result.config
    assert config["model"] == {"name_or_path": "Qwen/Qwen3-4B-Instruct-2507", "trust_remote_code": True}
    assert config["template"] == {"name": "auto"}  # qwen3_nothink: the tokenizer's own template
    assert config["data"] == {
        "dataset": ["identity", "alpaca_en_demo"],
        "cutoff_len": 2048,
        "max_samples": 1000,
        "preprocessing_workers": 16,
    }
    assert config["stage"] == {"name": "sft"}
    assert config["adapter"] == {"method": "lora", "rank": 8, "alpha": 16, "targets": "all"}
    assert config["training"]["precision"] == "bf16"
    assert config["training"]["learning_rate"] == 1e-4
    assert "resume" not in config["training"]  # null -> ft-core's auto, as LLaMA-Factory resumes
    # save_only_model and ddp_timeout: TrainingArguments fields the training section passes on
    assert result.unmapped == []
    assert config["training"]["save_only_model"] is False and config["training"]["ddp_timeout"] == 180000000
    assert "loggers" not in config  # report_to: none


def test_lora_alpha_default_is_carried() -> None:
    config = translate({**EXAMPLES["lora_sft"][1], "lora_rank": 64}).config
    assert config["adapter"]["alpha"] == 128
    config = translate({**EXAMPLES["lora_sft"][1], "lora_rank": 64, "lora_alpha": 32}).config
    assert config["adapter"]["alpha"] == 32


def test_comma_lists_and_lora_options() -> None:
    lf = {**EXAMPLES["lora_sft"][1], "lora_target": "q_proj, v_proj", "additional_target": "embed_tokens,lm_head",
          "lora_dropout": 0.05, "use_rslora": True, "use_dora": True}  # fmt: skip
    adapter = translate(lf).config["adapter"]
    assert adapter["targets"] == ["q_proj", "v_proj"]
    assert adapter["modules_to_save"] == ["embed_tokens", "lm_head"]
    assert adapter["dropout"] == 0.05 and adapter["use_rslora"] and adapter["use_dora"]


def test_qlora() -> None:
    result = translate(EXAMPLES["qlora_sft"][1])
    assert result.config["quantization"] == {
        "method": "bitsandbytes",
        "bits": 4,
        "quant_type": "nf4",
        "double_quant": True,
    }
    bad = translate({**EXAMPLES["qlora_sft"][1], "quantization_method": "hqq", "quantization_bit": 7})
    assert "quantization" not in bad.config
    assert any("hqq" in b for b in bad.blockers)


def test_hqq_and_eetq() -> None:
    hqq = translate({**EXAMPLES["hqq"][1], "quantization_bit": 3, "double_quantization": True})
    assert hqq.config["quantization"] == {"method": "hqq", "bits": 3}
    assert "double_quantization" in {k for k, _, _ in hqq.unmapped} and not hqq.blockers
    eetq = translate(EXAMPLES["eetq"][1])
    assert eetq.config["quantization"] == {"method": "eetq", "bits": 8} and not eetq.unmapped
    assert translate({**EXAMPLES["eetq"][1], "quantization_bit": 4}).blockers
    missing = translate(EXAMPLES["hqq"][1], {"quantizer": {"bitsandbytes": None}})
    assert "quantization" not in missing.config
    assert any("ft-core-hqq" in b for b in missing.blockers)


def test_full_and_deepspeed(tmp_path: Path) -> None:
    result = translate(EXAMPLES["full_sft"][1])
    assert result.config["adapter"] == {"method": "full"}
    # the file is not there: the stage and offload come from LLaMA-Factory's file names
    assert result.config["distributed"] == {"strategy": "deepspeed", "nproc": "auto"}
    assert result.config["deepspeed"] == {"stage": 3}
    offload = translate(
        {**EXAMPLES["deepspeed"][1], "deepspeed": "examples/deepspeed/ds_z3_offload_config.json"}
    )
    assert offload.config["deepspeed"] == {"stage": 3, "offload_optimizer": True, "offload_params": True}
    # a file that is there is read (LLaMA-Factory's ds_z2_offload_config.json)
    path = tmp_path / "my_ds.json"
    path.write_text('{"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}')
    z2 = translate({**EXAMPLES["deepspeed"][1], "deepspeed": str(path)})
    assert z2.config["deepspeed"] == {"stage": 2, "offload_optimizer": True}
    z0 = translate({**EXAMPLES["deepspeed"][1], "deepspeed": "examples/deepspeed/ds_z0_config.json"})
    assert "DDP" in {k: why for k, _, why in z0.unmapped}["deepspeed"]
    assert z0.config["distributed"] == {"nproc": "auto"}
    missing = translate(EXAMPLES["deepspeed"][1], {"config_section": {}})
    assert "distributed" not in missing.config and any("ft-core-deepspeed" in b for b in missing.blockers)
    fsdp = translate({**EXAMPLES["lora_sft"][1], "fsdp": "full_shard auto_wrap offload"})
    assert fsdp.config["distributed"] == {"strategy": "fsdp", "nproc": "auto"}
    assert fsdp.config["fsdp"] == {"cpu_offload": True}
    hybrid = translate({**EXAMPLES["lora_sft"][1], "fsdp": "hybrid_shard"})
    assert "fsdp" in {k for k, _, _ in hybrid.unmapped} and "distributed" not in hybrid.config


def test_optimizer_switches() -> None:
    pure = translate(EXAMPLES["galore"][1]).config  # pure_bf16: bf16 weights that also train in bf16
    assert pure["model"]["dtype"] == "bfloat16" and pure["training"]["upcast_trainable"] is False
    assert pure["training"]["precision"] == "bf16"
    galore = translate(EXAMPLES["galore"][1]).config["optimizer"]
    assert galore == {
        "name": "galore",
        "layerwise": True,
        "targets": ["mlp", "self_attn"],
        "rank": 128,
        "scale": 2.0,
    }
    apollo = translate(EXAMPLES["apollo"][1]).config["optimizer"]
    assert apollo == {"name": "apollo", "targets": "all", "rank": 128, "scale": 32.0, "scale_type": "channel",
                      "layerwise": True}  # fmt: skip
    badam = translate(EXAMPLES["badam"][1])
    assert badam.config["optimizer"] == {"name": "badam", "mode": "layer", "switch_mode": "ascending",
                                         "switch_every": 50}  # fmt: skip
    assert "badam_verbose" in {k for k, _, _ in badam.unmapped}
    muon = translate({**EXAMPLES["muon"][1], "adam_beta2": 0.95, "adam_epsilon": 1e-6}).config["optimizer"]
    assert muon == {"name": "muon", "adamw_betas": [0.9, 0.95], "adamw_eps": 1e-6}
    # one switch at a time; options of a switch that is off are listed, not written
    both = translate({**EXAMPLES["galore"][1], "use_apollo": True, "apollo_rank": 4})
    reasons = {k: why for k, _, why in both.unmapped}
    assert "galore" in reasons["use_apollo"] and "apollo_rank" in reasons
    missing = translate(EXAMPLES["galore"][1], {"optimizer": {"adamw": None}})
    assert "optimizer" not in missing.config and any("ft-core-galore" in b for b in missing.blockers)
    for optim, options in (("adamw_bnb_8bit", {"bits": 8}), ("paged_adamw_8bit", {"bits": 8, "paged": True}),
                           ("paged_adamw_32bit", {"paged": True})):  # fmt: skip
        assert translate({**EXAMPLES["lora_sft"][1], "optim": optim}).config["optimizer"] == {
            "name": "adamw",
            **options,
        }
    assert "optim" in {k for k, _, _ in translate({**EXAMPLES["lora_sft"][1], "optim": "adafactor"}).unmapped}


def test_pissa_and_loraplus() -> None:
    pissa = translate({**EXAMPLES["pissa"][1], "pissa_iter": -1})
    assert pissa.config["adapter"]["init"] == "pissa" and pissa.config["adapter"]["pissa_iter"] == 0
    assert not pissa.unmapped
    keep = translate({**EXAMPLES["pissa"][1], "pissa_convert": False})
    assert "pissa_convert" in {k for k, _, _ in keep.unmapped}
    old_lora = translate(EXAMPLES["pissa"][1], {"adapter": {"lora": frozenset({"rank", "alpha", "targets"})}})
    assert "init" not in old_lora.config["adapter"]
    assert {"pissa_init", "pissa_iter", "pissa_convert"} <= {k for k, _, _ in old_lora.unmapped}
    assert translate(EXAMPLES["loraplus"][1]).config["adapter"]["lora_plus_ratio"] == 16.0
    full = translate({**EXAMPLES["full_sft"][1], "pissa_init": True})
    assert "pissa_init" in {k for k, _, _ in full.unmapped}


def test_orpo_and_simpo() -> None:
    orpo = translate({**EXAMPLES["orpo"][1], "pref_ftx": 0.1})
    assert orpo.config["stage"] == {"name": "orpo", "beta": 0.1}
    assert {k for k, _, _ in orpo.unmapped} == {"pref_ftx"} and not orpo.blockers
    simpo = translate(EXAMPLES["simpo"][1])
    assert simpo.config["stage"] == {"name": "simpo", "simpo_gamma": 0.5, "beta": 2.0, "ftx": 0.5}
    assert translate({**EXAMPLES["simpo"][1], "simpo_gamma": 1.0}).config["stage"]["simpo_gamma"] == 1.0
    missing = translate(EXAMPLES["orpo"][1], {"stage": {"dpo": frozenset({"beta"})}})
    assert any("ft-core-orpo" in b for b in missing.blockers)
    assert "simpo_gamma" in {k for k, _, _ in translate({**EXAMPLES["dpo"][1], "simpo_gamma": 0.5}).unmapped}


def test_llama_pro() -> None:
    result = translate(EXAMPLES["llama_pro"][1])
    assert result.config["adapter"] == {"method": "llama_pro", "num_expand": 8}
    assert {k for k, _, _ in result.unmapped} == {"freeze_trainable_modules"}
    lora = translate({**EXAMPLES["lora_sft"][1], "use_llama_pro": True})
    assert lora.config["adapter"] == {"method": "llama_pro", "num_expand": 2, "use_lora": True, "rank": 8,
                                      "alpha": 16, "targets": "all"}  # fmt: skip
    missing = translate(EXAMPLES["llama_pro"][1], {"adapter": {"freeze": None}})
    assert missing.config["adapter"]["method"] == "freeze" and any("llama-pro" in b for b in missing.blockers)


def test_model_patches() -> None:
    assert translate(EXAMPLES["longlora"][1]).config["patches"] == [{"name": "shift_attn"}]
    mod = translate(EXAMPLES["mod"][1])
    assert mod.config["patches"] == [{"name": "mixture_of_depths", "mode": "convert"}]
    missing = translate(EXAMPLES["mod"][1], {"model_patch": {}})
    assert "patches" not in missing.config
    assert "ft-core-mod" in {k: why for k, _, why in missing.unmapped}["mixture_of_depths"]


def test_freeze() -> None:
    result = translate(EXAMPLES["freeze_sft"][1])
    assert result.config["adapter"] == {
        "method": "freeze",
        "trainable_layers": 2,
        "trainable_modules": ["all"],
    }
    assert result.config["template"] == {"name": "llama3"}
    assert any("llama3.1" in note for note in result.notes)


def test_pretraining() -> None:
    config = translate(EXAMPLES["pretrain"][1]).config
    assert config["stage"] == {"name": "pt"}
    assert config["data"]["dataset"] == ["c4_demo"]


def test_dpo() -> None:
    result = translate(EXAMPLES["dpo"][1])
    assert result.config["stage"] == {"name": "dpo", "beta": 0.1, "loss_type": "sigmoid"}
    cdpo = translate({**EXAMPLES["dpo"][1], "dpo_label_smoothing": 0.1})  # sigmoid: conservative DPO
    assert cdpo.config["stage"]["label_smoothing"] == 0.1 and not cdpo.unmapped
    rdpo = translate({**EXAMPLES["dpo"][1], "pref_loss": "robust", "dpo_label_smoothing": 0.1})
    assert rdpo.config["stage"]["label_smoothing"] == 0.1


def test_kto() -> None:
    result = translate(EXAMPLES["kto"][1])
    assert result.config["stage"] == {"name": "kto", "beta": 0.1, "desirable_weight": 1.0}
    # ft-core's kto needs 2 rows per device batch: the effective batch is kept
    assert result.config["training"]["per_device_train_batch_size"] == 2
    assert result.config["training"]["gradient_accumulation_steps"] == 4
    assert not result.unmapped


@pytest.mark.parametrize("name", ["kto", "reward", "ppo"])
def test_stages_ft_core_lacks_are_flagged(name: str) -> None:
    available = {
        "stage": {"sft": frozenset(), "pt": frozenset({"packing"}), "dpo": frozenset({"beta", "ftx"})}
    }
    result = translate(EXAMPLES[name][1], available)
    lf_stage = EXAMPLES[name][1]["stage"]
    assert result.config["stage"]["name"] == lf_stage  # written as is, never silently sft
    assert any(f"`{lf_stage}`" in b for b in result.blockers)
    if name == "ppo":
        unmapped = {k for k, _, _ in result.unmapped}
        assert "reward_model" in unmapped
        # LLaMA-Factory's generating arguments become the run's generation section
        assert result.config["generation"] == {"max_new_tokens": 512, "top_k": 0, "top_p": 0.9}


def test_ppo_keys_map_to_the_ppo_stage_options() -> None:
    ppo_options = frozenset(
        {"reward_model", "ppo_epochs", "num_mini_batches", "target", "whiten_rewards", "score_norm"}
        | {"max_new_tokens", "temperature", "top_k", "top_p"}
    )
    lf = {
        **EXAMPLES["ppo"][1],
        "ppo_epochs": 2,
        "ppo_buffer_size": 2,
        "ppo_target": 3.0,
        "ppo_whiten_rewards": True,
        "ppo_score_norm": True,
        "reward_model_type": "lora",
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 4,
    }
    result = translate(lf, {"stage": {"ppo": ppo_options}})
    stage = result.config["stage"]
    assert stage["reward_model"] == "saves/llama3-8b/lora/reward"
    assert stage["ppo_epochs"] == 2 and stage["target"] == 3.0
    assert stage["whiten_rewards"] is True and stage["score_norm"] is True
    assert (stage["max_new_tokens"], stage["top_k"], stage["top_p"]) == (512, 0, 0.9)
    # the rollout batch is LLaMA-Factory's batch x accumulation x buffer, split into buffer mini-batches
    assert stage["num_mini_batches"] == 2
    assert result.config["training"]["per_device_train_batch_size"] == 16
    assert result.config["training"]["gradient_accumulation_steps"] == 1
    assert "reward_model_type" in {k for k, _, _ in result.unmapped}
    assert not any("`ppo`" in b for b in result.blockers)
    reasons = {k: why for k, _, why in translate({**lf, "stage": "dpo"}).unmapped}
    assert "only used by `stage: ppo`" in reasons["ppo_epochs"]


def test_multimodal() -> None:
    result = translate(EXAMPLES["multimodal"][1])
    assert result.config["template"] == {"name": "qwen2_vl"}
    assert "video_max_pixels" in {k for k, _, _ in result.unmapped}
    assert result.config["data"]["image_max_pixels"] == EXAMPLES["multimodal"][1]["image_max_pixels"]


def test_data_keys_are_carried() -> None:
    lf = {**EXAMPLES["lora_sft"][1], "dataset": "identity,alpaca_en_demo", "mix_strategy": "interleave_under",
          "interleave_probs": "0.7,0.3", "streaming": True, "buffer_size": 128, "tokenized_path": "saved",
          "eval_on_each_dataset": True, "media_dir": "media", "tool_format": "qwen", "preserve_thinking": True,
          "image_min_pixels": 1024}  # fmt: skip
    result = translate(lf)
    data = result.config["data"]
    assert data["mix_strategy"] == "interleave_under" and data["interleave_probs"] == [0.7, 0.3]
    assert (data["streaming"], data["buffer_size"], data["tokenized_path"]) == (True, 128, "saved")
    assert data["eval_on_each_dataset"] is True and data["media_dir"] == "media"
    assert (data["tool_format"], data["preserve_thinking"], data["image_min_pixels"]) == ("qwen", True, 1024)
    carried = {"mix_strategy", "interleave_probs", "streaming", "buffer_size", "tokenized_path", "media_dir",
               "eval_on_each_dataset", "tool_format", "preserve_thinking", "image_min_pixels"}  # fmt: skip
    assert carried <= {k for k, _, _ in result.mapped}
    assert any("tokenized_path" in note for note in result.notes)


@pytest.mark.parametrize("name", ["inference", "merge"])
def test_inference_and_merge(name: str) -> None:
    result = translate(EXAMPLES[name][1])
    assert "adapter" not in result.config and "training" not in result.config
    unmapped = {k: why for k, _, why in result.unmapped}
    assert result.config["model"]["adapters"] == ["saves/qwen3-4b/lora/sft"]
    if name == "merge":
        assert {"export_dir", "export_size", "export_device", "export_legacy_format"} <= set(unmapped)


def test_behaviour_keys() -> None:
    lf = {**EXAMPLES["lora_sft"][1], "flash_attn": "fa2", "rope_scaling": "yarn", "neftune_noise_alpha": 5,
          "enable_liger_kernel": True, "use_unsloth": True, "report_to": "tensorboard", "val_size": 0.1,
          "packing": True, "mask_history": True, "train_on_prompt": False, "default_system": "Be brief.",
          "enable_thinking": False, "adam_beta2": 0.95, "disable_gradient_checkpointing": True}  # fmt: skip
    result = translate(lf)
    config = result.config
    assert config["model"]["attn_implementation"] == "flash_attention_2"
    assert config["model"]["rope_scaling"] == "yarn"
    assert config["neftune"] == {"alpha": 5}
    assert config["liger"] == {"enabled": "auto"}
    assert config["unsloth"] == {"enabled": True} and config["adapter"]["method"] == "unsloth_lora"
    assert config["loggers"] == [{"name": "tensorboard"}]
    assert config["data"]["packing"] is True and config["data"]["mask_history"] is True
    assert config["template"]["system"] == "Be brief."
    assert config["template"]["kwargs"] == {"enable_thinking": False}
    assert config["optimizer"] == {"name": "adamw", "betas": [0.9, 0.95]}
    assert config["training"]["gradient_checkpointing"] is False
    assert translate({"flash_attn": "disabled"}).config["model"]["attn_implementation"] == "eager"


def test_typos_get_did_you_means() -> None:
    result = translate({**EXAMPLES["lora_sft"][1], "num_train_epoch": 2, "lora_rnak": 4, "zzz": 1})
    assert dict(result.unknown) == {
        "num_train_epoch": "num_train_epochs",
        "lora_rnak": "lora_rank",
        "zzz": "",
    }


def test_yaml_exponent_strings_are_numbers() -> None:
    training = translate({**EXAMPLES["lora_sft"][1], "learning_rate": "5e-5"}).config["training"]
    assert training["learning_rate"] == 5e-5


def test_dataset_info_attributes_are_counted() -> None:
    counts = coverage(dataset_info=True)
    assert counts["missing"] == 0 and counts["total"] > coverage()["total"]


def test_defaults_that_differ_are_carried() -> None:
    lf = {
        k: v
        for k, v in EXAMPLES["lora_sft"][1].items()
        if k not in ("learning_rate", "bf16", "lr_scheduler_type")
    }
    lf.pop("per_device_train_batch_size")
    training = translate(lf).config["training"]
    assert training["learning_rate"] == 5e-5 and training["lr_scheduler_type"] == "linear"
    assert training["per_device_train_batch_size"] == 8 and training["precision"] == "fp32"


# --------------------------------------------------------------------------- the table
def test_table_covers_every_llamafactory_argument() -> None:
    lf_keys = {k for fields in LF_ARGUMENT_CLASSES.values() for k in fields}
    assert lf_keys - set(BY_KEY) == set()
    assert set(BY_KEY) - lf_keys - set(HF_TRAINING_FIELDS) == set()
    assert len(BY_KEY) == len(SETTINGS)  # one row per key
    counts = coverage()
    assert counts["missing"] == 0
    assert counts["equivalent"] + counts["partial"] + counts["none"] == counts["total"] == len(lf_keys)
    assert all(s.note for s in SETTINGS if s.status != "equivalent" or s.target is None)


def _first_party_options() -> dict[str, set[str]]:
    """Option names of every section the table points into, from the installed first-party plugins."""
    from ft_core.bootstrap import load_plugins
    from ft_core.commands.import_lf import installed

    available = installed(load_plugins(strict=False))
    options: dict[str, set[str]] = {name: {f.name for f in dataclasses.fields(schema)} for name, schema in CORE_SECTIONS.items()}  # fmt: skip
    options["training"] |= set(PASSTHROUGH)  # the TrainingArguments fields the training section passes on
    for section, kind in (("stage", "stage"), ("adapter", "adapter"), ("quantization", "quantizer"),
                          ("optimizer", "optimizer"), ("loggers[tensorboard]", "logger")):  # fmt: skip
        options[section] = {"name", "method"} | {
            o for fields in available[kind].values() for o in fields or ()
        }
    for section, fields in available["config_section"].items():
        options[section] = set(fields or ())
    options["patches"] = set(available["model_patch"])
    return options


def test_every_target_exists() -> None:
    options = _first_party_options()
    for setting in SETTINGS:
        if setting.target is None or setting.target in ("loggers", "loggers[*].run_name"):
            continue
        if setting.target == "patches":  # a list of model patches, by name
            assert setting.key in options["patches"], setting
            continue
        section, _, key = setting.target.partition(".")
        assert section in options, setting
        assert key.split(".")[0] in options[section], setting


def test_template_names_are_registered() -> None:
    from ft_core.bootstrap import load_plugins

    names = set(load_plugins(strict=False).names("chat_template")) | {"auto"}
    assert {name for name, _ in TEMPLATE_NAMES.values()} <= names


def test_docs_page_is_generated_from_the_table() -> None:
    text = (ROOT / "docs" / "coming-from-llamafactory.md").read_text(encoding="utf-8")
    begin, end = "<!-- generated: mapping -->\n", "<!-- end generated -->"
    assert begin in text and end in text
    generated = text.split(begin, 1)[1].split(end, 1)[0]
    assert generated == mapping_markdown(), "regenerate: python tools/gen_lf_mapping_docs.py"


# --------------------------------------------------------------------------- the commands
def test_validate_says_import_lf_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lf.yaml"
    path.write_text(yaml.safe_dump({**EXAMPLES["lora_sft"][1], "num_train_epoch": 2}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 problem(s)" in err and f"ft-core import-lf {path}" in err
    assert looks_like_llamafactory({"stage": "sft", "template": "chatml"}, ["stage", "template"]) is False


def _runnable(name: str, model_dir: str, tmp_path: Path) -> dict[str, Any]:
    lf = dict(EXAMPLES[name][1])
    lf.update(model_name_or_path=model_dir, output_dir=str(tmp_path / "run"), bf16=False, max_samples=8)
    lf["trust_remote_code"] = False
    return lf


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("lora_sft", {}),
        ("qlora_sft", {}),
        ("full_sft", {}),
        ("freeze_sft", {"freeze_trainable_modules": "mlp", "template": "chatml"}),
        ("pretrain", {}),
        ("dpo", {}),
        ("kto", {}),
        ("galore", {"template": "chatml", "pure_bf16": False}),
        ("apollo", {"template": "chatml", "pure_bf16": False}),
        ("badam", {"template": "chatml"}),
        ("muon", {"template": "chatml"}),
        ("pissa", {"template": "chatml"}),
        ("loraplus", {"template": "chatml"}),
        ("orpo", {"template": "chatml"}),
        ("simpo", {"template": "chatml"}),
        ("hqq", {"template": "chatml"}),
        ("eetq", {"template": "chatml"}),
        ("llama_pro", {"template": "chatml", "freeze_trainable_layers": 1, "freeze_trainable_modules": None}),
        ("mod", {"template": "chatml", "optim": "adamw_torch", "pure_bf16": False}),
        ("longlora", {"template": "chatml"}),
    ],
)
def test_output_passes_validate(
    name: str, extra: dict[str, Any], tiny_model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ft_core.bootstrap import load_plugins

    if name == "kto" and "kto" not in load_plugins(strict=False).names("stage"):
        pytest.skip("ft-core-kto is not installed")
    lf = {**_runnable(name, tiny_model_dir, tmp_path), **extra}
    lf = {k: v for k, v in lf.items() if not (k in extra and v is None)}  # extra's None: drop the key
    source = tmp_path / "lf.yaml"
    source.write_text(yaml.safe_dump(lf))
    out = tmp_path / "ft"
    assert main(["import-lf", str(source), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "will not run" not in printed
    written = yaml.safe_load((out / "config.yaml").read_text())
    # bitsandbytes / EETQ need a GPU: check the section, validate without it
    if name in ("qlora_sft", "eetq"):
        assert written.pop("quantization")["bits"] == {"qlora_sft": 4, "eetq": 8}[name]
    written["training"]["use_cpu"] = True
    written["data"]["cache_dir"] = str(tmp_path / "cache")
    (out / "config.yaml").write_text(yaml.safe_dump(written))
    assert main(["validate", str(out / "config.yaml")]) == 0, capsys.readouterr().err
    assert "OK" in capsys.readouterr().out


def test_stdout_and_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "lf.yaml"
    source.write_text(
        yaml.safe_dump({**EXAMPLES["deepspeed"][1], "num_train_epoch": 1, "disable_tqdm": True})
    )
    assert main(["import-lf", str(source)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# ft-core run config.yaml")
    assert "#   disable_tqdm:" in captured.out and "did you mean num_train_epochs" in captured.out
    assert yaml.safe_load(captured.out)["deepspeed"] == {"stage": 3}
    assert yaml.safe_load(captured.out)["adapter"]["method"] == "lora"
    assert "not carried over" in captured.err
