"""Every LLaMA-Factory 0.9.x setting and its place in an ft-core config: the one table behind ``ft-core import-lf``,
the "Coming from LLaMA-Factory" docs page (generated from :func:`mapping_markdown`) and its tests.

:data:`LF_ARGUMENT_CLASSES` lists the fields of LLaMA-Factory's own argument classes (``hparams/*_args.py`` at
0.9.6.dev0, fields a YAML file can set); :data:`SETTINGS` gives each of them, plus the ``transformers``
``TrainingArguments`` fields LLaMA-Factory configs use, one row: the ft-core key (``None``: no key), a status
(``equivalent``: same meaning; ``partial``: a counterpart that differs as the note says; ``none``: no counterpart, the
note says why and what to do instead) and a note. :func:`translate` turns a flat LLaMA-Factory config into a nested
ft-core one and says what it did with every key. Import-light: nothing here imports torch or transformers.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["equivalent", "partial", "none"]
STATUSES: tuple[Status, ...] = ("equivalent", "partial", "none")

#: LLaMA-Factory's argument classes (0.9.6.dev0) and the fields a YAML config can set (``init=False`` and private
#: fields left out; ``MegatronBridgeArguments`` is not set from YAML keys).
LF_ARGUMENT_CLASSES: dict[str, tuple[str, ...]] = {
    "BaseModelArguments": (
        "model_name_or_path", "adapter_name_or_path", "adapter_folder", "cache_dir", "use_fast_tokenizer",
        "resize_vocab", "split_special_tokens", "add_tokens", "add_special_tokens", "new_special_tokens_config",
        "init_special_tokens", "model_revision", "low_cpu_mem_usage", "rope_scaling", "flash_attn", "shift_attn",
        "mixture_of_depths", "use_unsloth", "use_unsloth_gc", "enable_liger_kernel", "moe_aux_loss_coef",
        "disable_gradient_checkpointing", "use_reentrant_gc", "upcast_layernorm", "upcast_lmhead_output",
        "train_from_scratch", "infer_backend", "offload_folder", "use_kv_cache", "use_v1_kernels", "infer_dtype",
        "hf_hub_token", "ms_hub_token", "om_hub_token", "print_param_status", "trust_remote_code",
    ),
    "QuantizationArguments": (
        "quantization_method", "quantization_bit", "quantization_type", "double_quantization",
        "quantization_device_map",
    ),
    "ProcessorArguments": (
        "image_max_pixels", "image_min_pixels", "image_do_pan_and_scan", "crop_to_patches", "video_max_pixels",
        "video_min_pixels", "video_fps", "video_maxlen", "use_audio_in_video", "audio_sampling_rate",
    ),
    "ExportArguments": (
        "export_dir", "export_size", "export_device", "export_quantization_bit", "export_quantization_dataset",
        "export_quantization_nsamples", "export_quantization_maxlen", "export_legacy_format", "export_hub_model_id",
    ),
    "VllmArguments": ("vllm_maxlen", "vllm_gpu_util", "vllm_enforce_eager", "vllm_max_lora_rank", "vllm_config"),
    "SGLangArguments": (
        "sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size", "sglang_config", "sglang_lora_backend",
    ),
    "KTransformersArguments": (
        "use_kt", "kt_cpu_activation", "kt_weight_path", "kt_non_expert_weight_path", "kt_expert_checkpoint_path",
        "kt_use_lora_experts", "kt_lora_expert_num", "kt_lora_expert_intermediate_size",
    ),
    "DataArguments": (
        "template", "dataset", "eval_dataset", "dataset_dir", "media_dir", "cutoff_len", "train_on_prompt",
        "mask_history", "streaming", "buffer_size", "mix_strategy", "interleave_probs", "overwrite_cache",
        "preprocessing_batch_size", "preprocessing_num_workers", "max_samples", "eval_num_beams",
        "ignore_pad_token_for_loss", "val_size", "eval_on_each_dataset", "packing", "neat_packing", "tool_format",
        "default_system", "enable_thinking", "preserve_thinking", "tokenized_path", "data_shared_file_system",
    ),
    "FreezeArguments": ("freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules"),
    "LoraArguments": (
        "additional_target", "lora_alpha", "lora_dropout", "lora_rank", "lora_target", "loraplus_lr_ratio",
        "loraplus_lr_embedding", "use_rslora", "use_dora", "pissa_init", "pissa_iter", "pissa_convert",
        "create_new_adapter",
    ),
    "OFTArguments": (
        "additional_target", "module_dropout", "oft_rank", "oft_block_size", "oft_target", "create_new_adapter",
    ),
    "RLHFArguments": (
        "pref_beta", "pref_ftx", "pref_bco_weight", "pref_loss", "dpo_label_smoothing", "kto_chosen_weight",
        "kto_rejected_weight", "simpo_gamma", "ppo_buffer_size", "ppo_epochs", "ppo_score_norm", "ppo_target",
        "ppo_whiten_rewards", "ref_model", "ref_model_adapters", "ref_model_quantization_bit", "reward_model",
        "reward_model_adapters", "reward_model_quantization_bit", "reward_model_type", "ld_alpha",
    ),
    "GaloreArguments": (
        "use_galore", "galore_target", "galore_rank", "galore_update_interval", "galore_scale", "galore_proj_type",
        "galore_layerwise",
    ),
    "ApolloArguments": (
        "use_apollo", "apollo_target", "apollo_rank", "apollo_update_interval", "apollo_scale", "apollo_proj",
        "apollo_proj_type", "apollo_scale_type", "apollo_layerwise", "apollo_scale_front",
    ),
    "BAdamArgument": (
        "use_badam", "badam_mode", "badam_start_block", "badam_switch_mode", "badam_switch_interval",
        "badam_update_ratio", "badam_mask_mode", "badam_verbose",
    ),
    "SwanLabArguments": (
        "use_swanlab", "swanlab_project", "swanlab_workspace", "swanlab_run_name", "swanlab_mode",
        "swanlab_api_key", "swanlab_logdir", "swanlab_lark_webhook_url", "swanlab_lark_secret",
    ),
    "FinetuningArguments": (
        "pure_bf16", "stage", "finetuning_type", "use_llama_pro", "use_adam_mini", "use_mca", "use_megatron_bridge",
        "use_hyper_parallel", "hyper_parallel_args", "hyper_parallel_cp_size", "use_muon", "use_dft_loss",
        "use_asft_loss", "asft_alpha", "use_eaft_loss", "eaft_alpha", "freeze_vision_tower",
        "freeze_multi_modal_projector", "freeze_language_model", "compute_accuracy", "disable_shuffling",
        "early_stopping_steps", "plot_loss", "include_effective_tokens_per_second",
    ),
    "GeneratingArguments": (
        "do_sample", "temperature", "top_p", "top_k", "num_beams", "max_length", "max_new_tokens",
        "repetition_penalty", "length_penalty", "skip_special_tokens",
    ),
    "RayArguments": ("ray_num_workers", "ray_init_kwargs", "master_addr", "master_port"),
    "ProfilerArguments": (
        "enable_torch_profiler", "profiler_output_dir", "profiler_wait_steps", "profiler_warmup_steps",
        "profiler_active_steps", "profiler_repeat", "profiler_record_shapes", "profiler_profile_memory",
        "profiler_with_stack", "profile_modules",
    ),
    "Fp8Arguments": ("fp8", "fp8_backend", "fp8_enable_fsdp_float8_all_gather"),
    "TrainingArguments": ("overwrite_output_dir",),
    "EvaluationArguments": ("task", "task_dir", "batch_size", "seed", "lang", "n_shot", "save_dir", "download_mode"),
}  # fmt: skip

#: The group of the ``transformers`` ``TrainingArguments`` fields (LLaMA-Factory's TrainingArguments inherits them).
HF_GROUP = "transformers TrainingArguments"

#: ``transformers`` ``Seq2SeqTrainingArguments`` fields (5.x, plus 4.x names LLaMA-Factory configs still carry):
#: recognised as LLaMA-Factory keys; those without a row of their own get the generic ``training.*`` rule.
HF_TRAINING_FIELDS: tuple[str, ...] = (
    "output_dir", "per_device_train_batch_size", "num_train_epochs", "max_steps", "learning_rate",
    "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "optim", "optim_args", "weight_decay", "adam_beta1",
    "adam_beta2", "adam_epsilon", "optim_target_modules", "gradient_accumulation_steps",
    "average_tokens_across_devices", "max_grad_norm", "label_smoothing_factor", "bf16", "fp16", "bf16_full_eval",
    "fp16_full_eval", "tf32", "gradient_checkpointing", "gradient_checkpointing_kwargs", "torch_compile",
    "torch_compile_backend", "torch_compile_mode", "use_liger_kernel", "liger_kernel_config", "neftune_noise_alpha",
    "torch_empty_cache_steps", "auto_find_batch_size", "logging_strategy", "logging_steps", "logging_first_step",
    "log_on_each_node", "logging_nan_inf_filter", "include_num_input_tokens_seen", "log_level", "log_level_replica",
    "disable_tqdm", "report_to", "run_name", "project", "eval_strategy", "eval_steps", "eval_delay",
    "per_device_eval_batch_size", "prediction_loss_only", "eval_on_start", "eval_do_concat_batches",
    "eval_accumulation_steps", "include_for_metrics", "batch_eval_metrics", "save_only_model", "save_strategy",
    "save_steps", "save_on_each_node", "save_total_limit", "push_to_hub", "hub_token", "hub_private_repo",
    "hub_model_id", "hub_strategy", "hub_always_push", "hub_revision", "load_best_model_at_end",
    "metric_for_best_model", "greater_is_better", "ignore_data_skip", "restore_callback_states_from_checkpoint",
    "full_determinism", "seed", "data_seed", "use_cpu", "accelerator_config", "dataloader_drop_last",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "remove_unused_columns", "label_names", "length_column_name", "ddp_find_unused_parameters", "ddp_bucket_cap_mb",
    "ddp_broadcast_buffers", "ddp_backend", "ddp_timeout", "fsdp", "fsdp_config", "deepspeed", "debug",
    "skip_memory_metrics", "do_train", "do_eval", "do_predict", "resume_from_checkpoint", "local_rank",
    "sortish_sampler", "predict_with_generate", "generation_max_length", "generation_num_beams", "generation_config",
    # transformers 4.x names
    "evaluation_strategy", "logging_dir", "save_safetensors", "no_cuda", "group_by_length", "warmup_ratio",
    "save_on_each_node", "use_mps_device", "overwrite_output_dir", "dataloader_persistent_workers",
)  # fmt: skip

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_NO_DOWNLOAD = "ft-core loads local model folders and never downloads"


@dataclass(frozen=True)
class Setting:
    """One LLaMA-Factory setting: where it goes in ft-core (``target``, ``None`` for no key), how well it matches
    (``status``) and what differs or why there is nothing (``note``)."""

    key: str
    group: str
    target: str | None
    status: Status
    note: str = ""


def _rows(
    group: str, *rows: tuple[str, str | None, Status, str] | tuple[str, str | None, Status]
) -> list[Setting]:
    return [Setting(r[0], group, r[1], r[2], r[3] if len(r) > 3 else "") for r in rows]  # type: ignore[misc]


_OFT = "OFT is not available in ft-core (no `oft` adapter method)"
_KT = "KTransformers (CPU/GPU hybrid MoE) is not available in ft-core"
_EXPORT = "`ft-core export RUN_DIR --output DIR` (ft-core-export) merges a run's adapter into its base model"
_GALORE = "with `use_galore: true`: `optimizer: {name: galore}` (ft-core-galore)"
_APOLLO = "with `use_apollo: true`: `optimizer: {name: apollo}` (ft-core-apollo)"
_BADAM = "with `use_badam: true`: `optimizer: {name: badam}` (ft-core-badam)"
#: LLaMA-Factory's optimizer switches -> (ft-core optimizer, its plugin, {LF key: optimizer option}).
OPTIMIZER_SWITCHES: dict[str, tuple[str, str, dict[str, str]]] = {
    "use_galore": ("galore", "ft-core-galore", {
        "galore_target": "targets", "galore_rank": "rank", "galore_update_interval": "update_interval",
        "galore_scale": "scale", "galore_proj_type": "proj_type", "galore_layerwise": "layerwise"}),
    "use_apollo": ("apollo", "ft-core-apollo", {
        "apollo_target": "targets", "apollo_rank": "rank", "apollo_update_interval": "update_interval",
        "apollo_scale": "scale", "apollo_proj": "proj", "apollo_proj_type": "proj_type",
        "apollo_scale_type": "scale_type", "apollo_layerwise": "layerwise"}),
    "use_badam": ("badam", "ft-core-badam", {
        "badam_mode": "mode", "badam_start_block": "start_block", "badam_switch_mode": "switch_mode",
        "badam_switch_interval": "switch_every", "badam_update_ratio": "update_ratio",
        "badam_mask_mode": "mask_mode"}),
    "use_muon": ("muon", "ft-core-muon", {}),
}  # fmt: skip
#: transformers ``optim`` names -> the ``adamw`` optimizer's options.
ADAMW_OPTIMS: dict[str, dict[str, Any]] = {
    "adamw_torch": {}, "adamw_hf": {}, "adamw_torch_fused": {"fused": True},
    "adamw_bnb_8bit": {"bits": 8}, "adamw_8bit": {"bits": 8}, "paged_adamw_8bit": {"bits": 8, "paged": True},
    "paged_adamw_32bit": {"paged": True}, "paged_adamw": {"paged": True},
}  # fmt: skip
_SWANLAB = "SwanLab logging is not available (no `swanlab` logger plugin); `loggers: [tensorboard]` is"
_PPO_RM = (
    "ft-core's ppo stage reads the reward model from a finished ft-core rm run (`stage.reward_model: RUN_DIR`), whatever its adapter method; "
    "an API reward model is not available"
)
#: LLaMA-Factory's GeneratingArguments that the ``generation`` section takes under the same names.
GENERATION_KEYS: tuple[str, ...] = (
    "do_sample", "temperature", "top_p", "top_k", "num_beams", "max_new_tokens", "repetition_penalty",
    "length_penalty",
)  # fmt: skip
_GEN = (
    "stored with the run; used by chat, serve and predict, whose flags override it. ft-core's defaults decode "
    "greedily (LLaMA-Factory samples at temperature 0.95, top_p 0.7, top_k 50)"
)
_VIDEO = "video and audio inputs are not supported by ft-core's data pipeline"
_RAY = "Ray is not used: ft-core runs multi-GPU through torchrun (DDP)"
_PROFILER = "no built-in torch profiler hook; run under `torch.profiler` or `nsys` yourself"
_EVAL = "multiple-choice benchmarks (MMLU-style, ft-core-eval): `ft-core eval RUN_DIR"

SETTINGS: tuple[Setting, ...] = tuple(
    _rows(
        "BaseModelArguments",
        (
            "model_name_or_path",
            "model.name_or_path",
            "equivalent",
            "a Hub id (through the Hugging Face cache, downloaded where a network exists; offline it must be "
            "cached), a local folder, or a .gguf file",
        ),
        (
            "adapter_name_or_path",
            "model.adapters",
            "equivalent",
            "comma list -> list; adapter folders or ft-core run folders. With LoRA the last one trains on (rank and "
            "alpha must match it) and the others are merged; chat, serve and export rebuild the same base",
        ),
        (
            "adapter_folder",
            None,
            "none",
            "list the adapter folders in model.adapters (ft-core run folders work too)",
        ),
        (
            "cache_dir",
            "model.hub_cache_dir",
            "equivalent",
            "the Hugging Face download cache (default HF_HUB_CACHE)",
        ),
        ("use_fast_tokenizer", None, "equivalent", "ft-core always loads the fast tokenizer (drop it)"),
        (
            "resize_vocab",
            "model.resize_vocab",
            "equivalent",
            "added tokens always grow the embeddings, as in LLaMA-Factory",
        ),
        ("split_special_tokens", None, "none", "special tokens in the data are always kept whole"),
        (
            "add_tokens",
            "model.add_tokens",
            "equivalent",
            "comma list -> list; the new embedding rows train (LoRA: embed_tokens / lm_head as modules_to_save) and "
            "are saved with the run",
        ),
        ("add_special_tokens", "model.add_special_tokens", "equivalent", "comma list -> list; as add_tokens"),
        (
            "new_special_tokens_config",
            None,
            "none",
            "per-token descriptions for initialising new tokens are not read; list the tokens in "
            "model.add_special_tokens (new rows start at the mean of the old ones)",
        ),
        (
            "init_special_tokens",
            None,
            "none",
            "new rows start as transformers' mean resizing sets them (LLaMA-Factory's noise_init is close); "
            "description-based initialisation is not available",
        ),
        ("model_revision", "model.revision", "equivalent", "the branch, tag or commit of a Hub id"),
        ("low_cpu_mem_usage", None, "equivalent", "transformers 5 always loads lazily (drop it)"),
        (
            "rope_scaling",
            "model.rope_scaling",
            "equivalent",
            "linear / dynamic / yarn / llama3; the factor defaults to cutoff_len / max_position_embeddings, as in "
            "LLaMA-Factory",
        ),
        (
            "flash_attn",
            "model.attn_implementation",
            "equivalent",
            "auto -> auto, sdpa -> sdpa, disabled -> eager, fa2 -> flash_attention_2, fa3 -> flash_attention_3",
        ),
        (
            "shift_attn",
            "patches",
            "equivalent",
            "true -> `patches: [{name: shift_attn}]` (ft-core-longlora, group 1/4 of the sequence, training only)",
        ),
        (
            "mixture_of_depths",
            "patches",
            "equivalent",
            "convert / load -> `patches: [{name: mixture_of_depths, mode: ...}]` (ft-core-mod; full tuning)",
        ),
        (
            "use_unsloth",
            "unsloth.enabled",
            "partial",
            "with LoRA: `unsloth: {enabled: true}` and `adapter.method: unsloth_lora` (ft-core-unsloth); Unsloth "
            "with freeze / full tuning is not supported",
        ),
        (
            "use_unsloth_gc",
            "training.gradient_checkpointing",
            "partial",
            "`offload`: checkpointed layer inputs kept in CPU memory, as Unsloth's checkpointing does",
        ),
        (
            "enable_liger_kernel",
            "liger.enabled",
            "partial",
            "true -> `auto` (on for GPU runs of supported models, where liger-kernel is installed; `true` would make a "
            "CPU run an error), false -> false. ft-core's default is `auto`, LLaMA-Factory's is off",
        ),
        ("moe_aux_loss_coef", None, "none", "the MoE router auxiliary-loss coefficient is not exposed yet"),
        (
            "disable_gradient_checkpointing",
            "training.gradient_checkpointing",
            "partial",
            "true -> false. LLaMA-Factory checkpoints by default; ft-core's `auto` checkpoints only when the step "
            "would not fit in GPU memory",
        ),
        ("use_reentrant_gc", "training.gradient_checkpointing_reentrant", "equivalent"),
        (
            "upcast_layernorm",
            "quantization.upcast",
            "partial",
            "with bitsandbytes only: true -> `upcast: norms`",
        ),
        ("upcast_lmhead_output", None, "none", "the lm_head output is not upcast separately"),
        (
            "train_from_scratch",
            None,
            "none",
            "training starts from the model's weights; random init is not offered",
        ),
        (
            "infer_backend",
            None,
            "partial",
            "`ft-core chat` / `serve` use the `hf` inference engine (`--engine`); vllm / sglang / ktransformers "
            "engines are not available",
        ),
        ("offload_folder", None, "none", "disk offload of weights is not supported"),
        ("use_kv_cache", None, "equivalent", "generation always uses the KV cache (drop it)"),
        ("use_v1_kernels", None, "none", "LLaMA-Factory v1 kernels are LLaMA-Factory's own"),
        (
            "infer_dtype",
            "model.dtype",
            "partial",
            "auto / float16 / bfloat16 / float32; used for training too",
        ),
        (
            "hf_hub_token",
            None,
            "none",
            "not a config key: set HF_TOKEN (or `hf auth login`) for gated models",
        ),
        ("ms_hub_token", None, "none", f"{_NO_DOWNLOAD}; ModelScope is not used"),
        ("om_hub_token", None, "none", f"{_NO_DOWNLOAD}; Modelers is not used"),
        (
            "print_param_status",
            None,
            "none",
            "ft-core logs the trainable / total parameter counts at start-up",
        ),
        ("trust_remote_code", "model.trust_remote_code", "equivalent"),
    )
    + _rows(
        "QuantizationArguments",
        (
            "quantization_method",
            "quantization.method",
            "partial",
            "bnb / bitsandbytes -> bitsandbytes, hqq -> hqq (ft-core-hqq), eetq -> eetq (ft-core-eetq); "
            "ft-core also has torchao",
        ),
        (
            "quantization_bit",
            "quantization.bits",
            "equivalent",
            "bitsandbytes 4 / 8, hqq 1 / 2 / 3 / 4 / 5 / 6 / 8, eetq 8",
        ),
        (
            "quantization_type",
            "quantization.quant_type",
            "equivalent",
            "nf4 / fp4 (LLaMA-Factory's default nf4 is carried)",
        ),
        (
            "double_quantization",
            "quantization.double_quant",
            "equivalent",
            "LLaMA-Factory's default (true) is carried",
        ),
        ("quantization_device_map", None, "none", "device placement is automatic (one GPU per process)"),
    )
    + _rows(
        "ProcessorArguments",
        (
            "image_max_pixels",
            "data.image_max_pixels",
            "equivalent",
            "the same default (768 x 768); larger images are scaled down before the processor sees them",
        ),
        ("image_min_pixels", "data.image_min_pixels", "equivalent", "the same default (32 x 32)"),
        ("image_do_pan_and_scan", None, "none", "Gemma 3 pan-and-scan is not configurable"),
        ("crop_to_patches", None, "none", "InternVL crop-to-patches is not configurable"),
        ("video_max_pixels", None, "none", _VIDEO),
        ("video_min_pixels", None, "none", _VIDEO),
        ("video_fps", None, "none", _VIDEO),
        ("video_maxlen", None, "none", _VIDEO),
        ("use_audio_in_video", None, "none", _VIDEO),
        ("audio_sampling_rate", None, "none", _VIDEO),
    )
    + _rows(
        "ExportArguments",
        ("export_dir", None, "partial", f"{_EXPORT}; a command, not a config key"),
        (
            "export_size",
            None,
            "partial",
            "`ft-core export --max-shard-size 5GB` (LLaMA-Factory counts in GB)",
        ),
        ("export_device", None, "none", "`ft-core export` picks the device itself"),
        (
            "export_quantization_bit",
            None,
            "none",
            "GPTQ export is not available; `ft-core export --gguf TYPE` writes a quantized GGUF file",
        ),
        ("export_quantization_dataset", None, "none", "GPTQ export is not available"),
        ("export_quantization_nsamples", None, "none", "GPTQ export is not available"),
        ("export_quantization_maxlen", None, "none", "GPTQ export is not available"),
        ("export_legacy_format", None, "none", "weights are always written as safetensors"),
        ("export_hub_model_id", None, "none", "ft-core does not upload"),
    )
    + _rows(
        "VllmArguments",
        *[
            (k, None, "none", "the vLLM engine is not available (`ft-core chat --engine hf`)")
            for k in LF_ARGUMENT_CLASSES["VllmArguments"]
        ],
    )
    + _rows(
        "SGLangArguments",
        *[
            (k, None, "none", "the SGLang engine is not available (`ft-core chat --engine hf`)")
            for k in LF_ARGUMENT_CLASSES["SGLangArguments"]
        ],
    )
    + _rows(
        "KTransformersArguments",
        *[(k, None, "none", _KT) for k in LF_ARGUMENT_CLASSES["KTransformersArguments"]],
    )
    + _rows(
        "DataArguments",
        (
            "template",
            "template.name",
            "partial",
            "LLaMA-Factory template names map to ft-core's registered names (see the template table); names without "
            "an ft-core template become `auto` (the tokenizer's own chat template)",
        ),
        (
            "dataset",
            "data.dataset",
            "equivalent",
            "comma list -> list; names from dataset_dir/dataset_info.json",
        ),
        ("eval_dataset", "data.eval_dataset", "equivalent", "comma list -> list"),
        ("dataset_dir", "data.dataset_dir", "equivalent", "the same dataset_info.json format"),
        (
            "media_dir",
            "data.media_dir",
            "equivalent",
            "image paths in rows are resolved there (default dataset_dir)",
        ),
        (
            "cutoff_len",
            "data.cutoff_len",
            "equivalent",
            "SFT rows are cut turn by turn by LLaMA-Factory's rule (each turn's prompt and answer share the budget "
            "left, as its infer_seqlen splits it; with mask_history the last turn first)",
        ),
        ("train_on_prompt", "data.train_on_prompt", "equivalent"),
        ("mask_history", "data.mask_history", "equivalent", "the last turn keeps its place under cutoff_len"),
        (
            "streaming",
            "data.streaming",
            "partial",
            "a datasets.IterableDataset with a seeded shuffle buffer; needs max_steps, as in LLaMA-Factory; for "
            "stages with plain causal-LM rows (sft, pt), without packing or val_size",
        ),
        ("buffer_size", "data.buffer_size", "equivalent", "the shuffle buffer of a stream (same default)"),
        (
            "mix_strategy",
            "data.mix_strategy",
            "equivalent",
            "concat / interleave_under / interleave_over with datasets.interleave_datasets, seeded by training.seed",
        ),
        ("interleave_probs", "data.interleave_probs", "equivalent", "comma list -> list of numbers"),
        ("overwrite_cache", "data.overwrite_cache", "equivalent"),
        (
            "preprocessing_batch_size",
            None,
            "none",
            "rows are tokenized one by one in worker processes; no batch size",
        ),
        (
            "preprocessing_num_workers",
            "data.preprocessing_workers",
            "equivalent",
            "ft-core's default (null) uses every available core",
        ),
        ("max_samples", "data.max_samples", "equivalent"),
        ("eval_num_beams", None, "none", "evaluation computes the loss; no generation during evaluation"),
        ("ignore_pad_token_for_loss", None, "equivalent", "padding is always left out of the loss (drop it)"),
        ("val_size", "data.val_size", "equivalent"),
        (
            "eval_on_each_dataset",
            "data.eval_on_each_dataset",
            "equivalent",
            "each eval_dataset on its own, metrics eval_<name>_*",
        ),
        (
            "packing",
            "data.packing",
            "partial",
            "ft-core packs padding-free and keeps samples apart (as LLaMA-Factory's neat_packing); LLaMA-Factory's "
            "plain packing lets packed samples attend to each other. For `stage: pt`, ft-core packs by default (the "
            "pt stage's own `packing` option)",
        ),
        ("neat_packing", "data.packing", "equivalent", "ft-core's packing keeps samples apart"),
        (
            "tool_format",
            "data.tool_format",
            "partial",
            "a check, not a switch: ft-core templates render tools in their own Jinja, so the format must be the "
            "chosen template's (qwen, llama3, mistral, glm4 have templates)",
        ),
        ("default_system", "template.system", "equivalent"),
        (
            "enable_thinking",
            "template.kwargs.enable_thinking",
            "equivalent",
            "passed to the chat template; false also strips the reasoning from the answers, as in LLaMA-Factory",
        ),
        (
            "preserve_thinking",
            "data.preserve_thinking",
            "partial",
            "keeps earlier turns' reasoning under mask_history; templates that drop it themselves (qwen3) train each "
            "turn as inference shows it",
        ),
        (
            "tokenized_path",
            "data.tokenized_path",
            "partial",
            "the same save-or-reuse semantics; the folder holds ft-core's prepared rows (a LLaMA-Factory one is not "
            "read: prepare again once)",
        ),
        (
            "data_shared_file_system",
            None,
            "none",
            "the data cache is prepared once per machine, by the first rank",
        ),
    )
    + _rows(
        "FreezeArguments",
        (
            "freeze_trainable_layers",
            "adapter.trainable_layers",
            "equivalent",
            "with `adapter.method: freeze`",
        ),
        ("freeze_trainable_modules", "adapter.trainable_modules", "equivalent", "comma list -> list"),
        ("freeze_extra_modules", "adapter.extra_modules", "equivalent", "comma list -> list"),
    )
    + _rows(
        "LoraArguments",
        ("additional_target", "adapter.modules_to_save", "equivalent", "comma list -> list"),
        ("lora_alpha", "adapter.alpha", "equivalent", "the same default: 2 x lora_rank"),
        ("lora_dropout", "adapter.dropout", "equivalent"),
        ("lora_rank", "adapter.rank", "equivalent"),
        ("lora_target", "adapter.targets", "equivalent", "`all` or a comma list -> list of module names"),
        (
            "loraplus_lr_ratio",
            "adapter.lora_plus_ratio",
            "equivalent",
            "LoRA+: B matrices at learning_rate x ratio",
        ),
        (
            "loraplus_lr_embedding",
            None,
            "none",
            "LoRA+'s separate embedding learning rate is not exposed (ft-core-lora's lora_plus_ratio covers B)",
        ),
        ("use_rslora", "adapter.use_rslora", "equivalent"),
        ("use_dora", "adapter.use_dora", "equivalent"),
        ("pissa_init", "adapter.init", "equivalent", "true -> `init: pissa` (ft-core-lora)"),
        ("pissa_iter", "adapter.pissa_iter", "equivalent", "fast SVD iterations; -1 (exact SVD) -> 0"),
        (
            "pissa_convert",
            None,
            "partial",
            "ft-core always saves a PiSSA adapter as a plain LoRA adapter of the original base (true); false is "
            "not offered",
        ),
        (
            "create_new_adapter",
            "model.create_new_adapter",
            "equivalent",
            "with model.adapters: merge them all and train a new adapter on top",
        ),
    )
    + _rows(
        "OFTArguments",
        ("module_dropout", None, "none", _OFT),
        ("oft_rank", None, "none", _OFT),
        ("oft_block_size", None, "none", _OFT),
        ("oft_target", None, "none", _OFT),
    )
    + _rows(
        "RLHFArguments",
        (
            "pref_beta",
            "stage.beta",
            "equivalent",
            "with `stage: dpo` (and any stage whose options have `beta`)",
        ),
        ("pref_ftx", "stage.ftx", "equivalent", "the SFT loss weight in DPO (RPO)"),
        ("pref_bco_weight", None, "none", "the BCO term of DPO is not available"),
        (
            "pref_loss",
            "stage.loss_type",
            "partial",
            "sigmoid / hinge / ipo map to TRL's loss types of the same name; orpo -> `stage: orpo` (ft-core-orpo), "
            "simpo -> `stage: simpo` (ft-core-cpo)",
        ),
        (
            "dpo_label_smoothing",
            "stage.label_smoothing",
            "equivalent",
            "with the sigmoid loss: conservative DPO (cDPO), as in LLaMA-Factory; with robust / exo_pair / aot "
            "TRL's own use of it",
        ),
        ("kto_chosen_weight", "stage.desirable_weight", "equivalent", "with `stage: kto` (ft-core-kto)"),
        ("kto_rejected_weight", "stage.undesirable_weight", "equivalent", "with `stage: kto` (ft-core-kto)"),
        (
            "simpo_gamma",
            "stage.simpo_gamma",
            "equivalent",
            "with `pref_loss: simpo` (`stage: simpo`, ft-core-cpo); LLaMA-Factory's default 0.5 is carried",
        ),
        (
            "ppo_buffer_size",
            "stage.num_mini_batches",
            "equivalent",
            "with `stage: ppo` (ft-core-ppo): the rollout batch becomes per_device_train_batch_size x gradient_accumulation_steps x "
            "ppo_buffer_size with gradient_accumulation_steps 1, split into ppo_buffer_size mini-batches",
        ),
        ("ppo_epochs", "stage.ppo_epochs", "equivalent", "with `stage: ppo` (ft-core-ppo)"),
        (
            "ppo_score_norm",
            "stage.score_norm",
            "partial",
            "with `stage: ppo` (ft-core-ppo): scores standardised per rollout batch (LLaMA-Factory: running statistics)",
        ),
        (
            "ppo_target",
            "stage.target",
            "equivalent",
            "with `stage: ppo` (ft-core-ppo): the KL controller's target",
        ),
        ("ppo_whiten_rewards", "stage.whiten_rewards", "equivalent", "with `stage: ppo` (ft-core-ppo)"),
        (
            "ref_model",
            None,
            "none",
            "the DPO reference is the base model (the policy with its adapter switched off, or a frozen copy for full "
            "tuning); a separate reference model is not configurable",
        ),
        ("ref_model_adapters", None, "none", "the reference model is not configurable"),
        ("ref_model_quantization_bit", None, "none", "the reference model is not configurable"),
        (
            "reward_model",
            "stage.reward_model",
            "partial",
            "with `stage: ppo` (ft-core-ppo): the folder of a finished ft-core rm run (or reward functions such as exact_match), not a "
            "LLaMA-Factory checkpoint",
        ),
        ("reward_model_adapters", None, "none", _PPO_RM),
        ("reward_model_quantization_bit", None, "none", "the reward model loads unquantized"),
        ("reward_model_type", None, "none", _PPO_RM),
        ("ld_alpha", None, "none", "LD-DPO length desensitisation is not available"),
    )
    + _rows(
        "GaloreArguments",
        (
            "use_galore",
            "optimizer.name",
            "equivalent",
            "true -> `optimizer: {name: galore}` (ft-core-galore)",
        ),
        ("galore_target", "optimizer.targets", "equivalent", f"`all` or a comma list -> list; {_GALORE}"),
        *[
            (f"galore_{k}", f"optimizer.{k}", "equivalent", f"the same default; {_GALORE}")
            for k in ("rank", "update_interval", "scale", "proj_type")
        ],
        (
            "galore_layerwise",
            "optimizer.layerwise",
            "equivalent",
            f"each weight steps in its backward hook; {_GALORE}",
        ),
    )
    + _rows(
        "ApolloArguments",
        (
            "use_apollo",
            "optimizer.name",
            "equivalent",
            "true -> `optimizer: {name: apollo}` (ft-core-apollo)",
        ),
        ("apollo_target", "optimizer.targets", "equivalent", f"`all` or a comma list -> list; {_APOLLO}"),
        *[
            (f"apollo_{k}", f"optimizer.{k}", "equivalent", f"the same default; {_APOLLO}")
            for k in ("rank", "update_interval", "scale", "proj", "proj_type", "scale_type")
        ],
        (
            "apollo_layerwise",
            "optimizer.layerwise",
            "equivalent",
            f"each weight steps in its backward hook; {_APOLLO}",
        ),
        (
            "apollo_scale_front",
            None,
            "none",
            "APOLLO's scale-before-norm-limiter switch is not exposed (ft-core-apollo scales after)",
        ),
    )
    + _rows(
        "BAdamArgument",
        ("use_badam", "optimizer.name", "equivalent", "true -> `optimizer: {name: badam}` (ft-core-badam)"),
        *[
            (f"badam_{k}", f"optimizer.{k}", "equivalent", _BADAM)
            for k in ("mode", "start_block", "switch_mode", "update_ratio", "mask_mode")
        ],
        (
            "badam_switch_interval",
            "optimizer.switch_every",
            "equivalent",
            f"optimizer steps between switches; {_BADAM}",
        ),
        ("badam_verbose", None, "none", "BAdam's block printing is not configurable"),
    )
    + _rows(
        "SwanLabArguments", *[(k, None, "none", _SWANLAB) for k in LF_ARGUMENT_CLASSES["SwanLabArguments"]]
    )
    + _rows(
        "FinetuningArguments",
        (
            "pure_bf16",
            "training.upcast_trainable",
            "equivalent",
            "`model.dtype: bfloat16`, `training.upcast_trainable: false` and `training.precision: bf16` (bf16 "
            "weights that train in bf16; the optimizer keeps its states in the weights' dtype)",
        ),
        (
            "stage",
            "stage.name",
            "partial",
            "each stage is a plugin (ft-core-ppo for ppo, ...); the importer writes the name and says so when the "
            "stage is not installed",
        ),
        ("finetuning_type", "adapter.method", "partial", "lora / freeze / full; oft is not available"),
        (
            "use_llama_pro",
            "adapter.method",
            "partial",
            "`adapter: {method: llama_pro, num_expand: freeze_trainable_layers}` (ft-core-llama-pro; `use_lora` with "
            "finetuning_type lora). ft-core expands the model itself while loading: give it the original model, "
            "not one LLaMA-Factory's llama_pro.py already expanded",
        ),
        ("use_adam_mini", None, "none", "Adam-mini is not available (`optimizer: adamw`)"),
        ("use_mca", None, "none", "Megatron-Core (mcore_adapter) training is not available"),
        ("use_megatron_bridge", None, "none", "Megatron-Bridge training is not available"),
        (
            "use_hyper_parallel",
            None,
            "none",
            "HyperParallel is not available; multi-GPU runs use torchrun (DDP)",
        ),
        ("hyper_parallel_args", None, "none", "HyperParallel is not available"),
        ("hyper_parallel_cp_size", None, "none", "context parallelism is not available"),
        (
            "use_muon",
            "optimizer.name",
            "equivalent",
            "true -> `optimizer: {name: muon}` (ft-core-muon: Muon for 2-D weights, AdamW for the rest)",
        ),
        ("use_dft_loss", None, "none", "the DFT loss is not available"),
        ("use_asft_loss", None, "none", "the ASFT loss is not available"),
        ("asft_alpha", None, "none", "the ASFT loss is not available"),
        ("use_eaft_loss", None, "none", "the EAFT loss is not available"),
        ("eaft_alpha", None, "none", "the EAFT loss is not available"),
        ("freeze_vision_tower", "model.freeze_vision_tower", "equivalent"),
        ("freeze_multi_modal_projector", "model.freeze_multi_modal_projector", "equivalent"),
        ("freeze_language_model", None, "none", "the language model of a VLM always trains"),
        ("compute_accuracy", None, "none", "evaluation reports the loss only"),
        ("disable_shuffling", None, "none", "training data is always shuffled (seeded by training.seed)"),
        ("early_stopping_steps", None, "none", "early stopping is not available"),
        ("plot_loss", "training.plot_loss", "equivalent", "ft-core's default is true"),
        ("include_effective_tokens_per_second", None, "none", "ft-core logs tokens per second itself"),
    )
    + _rows(
        "GeneratingArguments",
        *[(k, f"generation.{k}", "equivalent", _GEN) for k in GENERATION_KEYS],
        ("max_length", None, "none", "max_new_tokens bounds a reply (the prompt is not counted)"),
        (
            "skip_special_tokens",
            None,
            "equivalent",
            "replies are always decoded without special tokens (drop it)",
        ),
    )
    + _rows("RayArguments", *[(k, None, "none", _RAY) for k in LF_ARGUMENT_CLASSES["RayArguments"]])
    + _rows(
        "ProfilerArguments", *[(k, None, "none", _PROFILER) for k in LF_ARGUMENT_CLASSES["ProfilerArguments"]]
    )
    + _rows(
        "Fp8Arguments",
        (
            "fp8",
            None,
            "none",
            "FP8 training is not available here (ft-core-torchao quantizes weights, not training)",
        ),
        ("fp8_backend", None, "none", "FP8 training is not available"),
        (
            "fp8_enable_fsdp_float8_all_gather",
            None,
            "none",
            "FP8 training is not available (ft-core-fsdp refuses quantized weights)",
        ),
    )
    + _rows("TrainingArguments", ("overwrite_output_dir", "training.overwrite_output_dir", "equivalent"))
    + _rows(
        "EvaluationArguments",
        ("task", None, "partial", f"{_EVAL} --task FILE_OR_FOLDER`, a command, not a config key"),
        ("task_dir", None, "partial", "`ft-core eval --task` takes the task's file or folder"),
        ("batch_size", None, "partial", "`ft-core eval --batch-size`"),
        ("lang", None, "none", "the task file's own language"),
        ("n_shot", None, "partial", "`ft-core eval --shots`"),
        ("save_dir", None, "partial", "`ft-core eval --output`"),
        ("download_mode", None, "none", "ft-core does not download tasks"),
    )
    + _rows(
        HF_GROUP,
        ("output_dir", "training.output_dir", "equivalent"),
        (
            "per_device_train_batch_size",
            "training.per_device_train_batch_size",
            "equivalent",
            "transformers' default 8 is carried (ft-core's is 1)",
        ),
        ("per_device_eval_batch_size", "training.per_device_eval_batch_size", "equivalent"),
        ("gradient_accumulation_steps", "training.gradient_accumulation_steps", "equivalent"),
        ("num_train_epochs", "training.num_train_epochs", "equivalent"),
        ("max_steps", "training.max_steps", "equivalent"),
        (
            "learning_rate",
            "training.learning_rate",
            "equivalent",
            "transformers' default 5e-5 is carried (ft-core's is 1e-4)",
        ),
        (
            "lr_scheduler_type",
            "training.lr_scheduler_type",
            "equivalent",
            "transformers' default `linear` is carried (ft-core's is cosine)",
        ),
        ("weight_decay", "training.weight_decay", "equivalent"),
        ("warmup_ratio", "training.warmup_ratio", "equivalent"),
        ("warmup_steps", "training.warmup_steps", "equivalent"),
        ("max_grad_norm", "training.max_grad_norm", "equivalent"),
        (
            "adam_beta1",
            "optimizer.betas",
            "equivalent",
            "with adam_beta2 -> `optimizer: {name: adamw, betas: [b1, b2]}`",
        ),
        ("adam_beta2", "optimizer.betas", "equivalent", "see adam_beta1"),
        ("adam_epsilon", "optimizer.eps", "equivalent"),
        (
            "optim",
            "optimizer.name",
            "partial",
            "adamw_torch / adamw_torch_fused / adamw_hf -> adamw; adamw_bnb_8bit / adamw_8bit -> `bits: 8`, "
            "paged_adamw_32bit / paged_adamw_8bit -> `paged: true` (bitsandbytes, CUDA only); others are not "
            "available",
        ),
        ("logging_steps", "training.logging_steps", "equivalent"),
        ("save_steps", "training.save_steps", "equivalent"),
        ("save_total_limit", "training.save_total_limit", "equivalent"),
        ("eval_steps", "training.eval_steps", "equivalent"),
        (
            "eval_strategy",
            "training.eval_strategy",
            "equivalent",
            "without it ft-core evaluates every eval_steps (or each epoch) when there is evaluation data",
        ),
        (
            "evaluation_strategy",
            "training.eval_strategy",
            "equivalent",
            "the transformers 4 name of eval_strategy",
        ),
        ("save_strategy", "training.save_strategy", "equivalent"),
        ("seed", "training.seed", "equivalent"),
        ("bf16", "training.precision", "equivalent", "true -> bf16"),
        ("fp16", "training.precision", "equivalent", "true -> fp16"),
        ("gradient_checkpointing", "training.gradient_checkpointing", "equivalent"),
        ("torch_compile", "training.torch_compile", "equivalent"),
        ("use_cpu", "training.use_cpu", "equivalent"),
        ("no_cuda", "training.use_cpu", "equivalent", "the transformers 4 name of use_cpu"),
        ("dataloader_num_workers", "training.dataloader_num_workers", "equivalent"),
        ("ddp_find_unused_parameters", "training.ddp_find_unused_parameters", "equivalent"),
        (
            "resume_from_checkpoint",
            "training.resume",
            "equivalent",
            "a checkpoint folder; null -> ft-core's `auto` (continue from the newest checkpoint unless "
            "overwrite_output_dir), which is what LLaMA-Factory does",
        ),
        ("do_train", None, "equivalent", "`ft-core run` trains (drop it)"),
        (
            "do_eval",
            None,
            "partial",
            "evaluation runs when there is evaluation data (val_size or eval_dataset)",
        ),
        ("do_predict", None, "partial", "batch prediction is a command: `ft-core predict` (ft-core-eval)"),
        ("predict_with_generate", None, "partial", "`ft-core predict` (ft-core-eval) generates"),
        (
            "report_to",
            "loggers",
            "partial",
            "none -> no loggers; tensorboard / wandb / mlflow -> `loggers: [...]` (ft-core-tensorboard, ft-core-wandb, "
            "ft-core-mlflow); swanlab has no logger plugin",
        ),
        ("logging_dir", "loggers[tensorboard].log_dir", "partial", "the TensorBoard log folder"),
        ("run_name", "loggers[*].run_name", "partial", "written into the wandb / mlflow logger entries"),
        ("neftune_noise_alpha", "neftune.alpha", "equivalent", "ft-core-neftune"),
        ("use_liger_kernel", "liger.enabled", "partial", "as enable_liger_kernel"),
        (
            "deepspeed",
            "distributed.strategy",
            "partial",
            "-> `distributed.strategy: deepspeed` and the `deepspeed` section (ft-core-deepspeed), which generates "
            "the JSON itself: the file's ZeRO stage (2 / 3) and CPU offload are read (from its name, ds_z3_offload_"
            "config.json, when the file is not there); its other settings are not. ZeRO-0 / 1: plain DDP",
        ),
        (
            "fsdp",
            "distributed.strategy",
            "partial",
            "full_shard / shard_grad_op -> `distributed.strategy: fsdp` (ft-core-fsdp: FSDP2; shard_grad_op -> "
            "`reshard_after_forward: false`), `offload` -> `fsdp.cpu_offload: true`; hybrid_shard is not available",
        ),
        ("fsdp_config", None, "none", "the `fsdp` section (ft-core-fsdp) holds FSDP2's options"),
        ("ddp_timeout", "training.ddp_timeout", "equivalent"),
        ("save_only_model", "training.save_only_model", "equivalent", "checkpoints without it cannot resume"),
        (
            "load_best_model_at_end",
            "training.load_best_model_at_end",
            "equivalent",
            "the saved model is the best",
        ),
        ("metric_for_best_model", "training.metric_for_best_model", "equivalent"),
        ("save_safetensors", None, "equivalent", "weights are always saved as safetensors (drop it)"),
        ("tf32", "training.tf32", "equivalent"),
        ("label_smoothing_factor", "training.label_smoothing_factor", "equivalent"),
        (
            "group_by_length",
            "training.train_sampling_strategy",
            "equivalent",
            "true -> `group_by_length` (the transformers 5 name)",
        ),
        ("push_to_hub", None, "none", "ft-core does not upload"),
        ("hub_model_id", None, "none", "ft-core does not upload"),
        ("logging_first_step", "training.logging_first_step", "equivalent"),
        (
            "disable_tqdm",
            None,
            "none",
            "ft-core prints its own progress lines: `ft-core -q run` for quiet output",
        ),
        ("remove_unused_columns", None, "equivalent", "the data pipeline passes only model inputs (drop it)"),
    )
)

#: The attributes of a ``dataset_info.json`` entry: ft-core reads LLaMA-Factory's file as it is, so these are not
#: config keys (the importer leaves the file alone); listed for the docs and the coverage count.
DATASET_INFO_GROUP = "dataset_info.json"
_REMOTE = "ft-core reads local files only and never downloads; download the set and give `file_name`"
DATASET_INFO_SETTINGS: tuple[Setting, ...] = tuple(
    _rows(
        DATASET_INFO_GROUP,
        ("hf_hub_url", None, "none", _REMOTE),
        ("ms_hub_url", None, "none", _REMOTE),
        ("om_hub_url", None, "none", _REMOTE),
        ("script_url", None, "none", _REMOTE),
        ("cloud_file_name", None, "none", _REMOTE),
        ("file_name", "file_name", "equivalent", "a file or folder relative to the json's folder"),
        ("formatting", "formatting", "equivalent", "alpaca / sharegpt (plus ft-core's `text` and plugin formats)"),
        ("ranking", "ranking", "equivalent", "preference pairs (chosen / rejected)"),
        ("subset", None, "none", "hub subsets: accepted and ignored for local files"),
        ("split", "split", "partial", "accepted; a local file has one split"),
        ("folder", None, "none", "hub folders: accepted and ignored for local files"),
        ("num_samples", "num_samples", "equivalent"),
        *[(f"columns.{c}", f"columns.{c}", "equivalent", "") for c in (
            "prompt", "query", "response", "history", "messages", "system", "tools", "images", "chosen",
            "rejected", "kto_tag")],
        ("columns.videos", None, "none", _VIDEO),
        ("columns.audios", None, "none", _VIDEO),
        *[(f"tags.{t}", f"tags.{t}", "equivalent", "") for t in (
            "role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag",
            "system_tag")],
    )
)  # fmt: skip

#: The rows by LLaMA-Factory key.
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}

#: Every key a LLaMA-Factory YAML file can set (for did-you-means).
ALL_LF_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys([k for fields in LF_ARGUMENT_CLASSES.values() for k in fields] + list(HF_TRAINING_FIELDS))
)

#: LLaMA-Factory template names -> (ft-core template name, note on how they render differently).
TEMPLATE_NAMES: dict[str, tuple[str, str]] = {
    "alpaca": ("alpaca", ""),
    "chatglm3": ("chatglm3", ""),
    "chatml": ("chatml", ""),
    "cohere": ("cohere", ""),
    "deepseek": ("deepseek", ""),
    "deepseek3": ("deepseek3", ""),
    "deepseekr1": ("deepseekr1", "earlier turns' reasoning is dropped, as the official template does"),
    "deepseekcoder": ("deepseekcoder", ""),
    "default": ("default", ""),
    "empty": ("empty", ""),
    "base": ("empty", "LLaMA-Factory's `base` renders the bare text, as ft-core's `empty`"),
    "falcon": ("falcon", ""),
    "gemma": (
        "gemma",
        "ft-core refuses a system role, as the official Gemma template does; LLaMA-Factory "
        "folds it into the first user turn (use `gemma3` for that)",
    ),
    "gemma2": ("gemma", "Gemma 2 uses the Gemma format"),
    "gemma3": ("gemma3", ""),
    "glm4": ("glm4", ""),
    "intern2": ("intern2", ""),
    "llama2": ("llama2", ""),
    "llama3": (
        "llama3",
        "for Llama 3.1 / 3.2 models ft-core also has `llama3.1` / `llama3.2` (with the official "
        "Cutting Knowledge / Today Date system header, which LLaMA-Factory's llama3 leaves out)",
    ),
    "llava": (
        "llava",
        "the official llava-hf template trains no EOS after answers; LLaMA-Factory's does "
        "(`vicuna` trains one)",
    ),
    "mistral": ("mistral", ""),
    "mistral_small": ("mistral_small", ""),
    "olmo": ("olmo", ""),
    "paligemma": ("paligemma", ""),
    "phi": ("phi", "ft-core's renders without the official template's final EOS"),
    "phi4": ("phi4", ""),
    "phi4_mini": ("phi4_mini", ""),
    "qwen": ("qwen", ""),
    "qwen3": ("qwen3", ""),
    "qwen3_nothink": (
        "auto",
        "Qwen3 Instruct-2507 (non-thinking) models: the tokenizer's own template; for hybrid "
        "Qwen3 models use `qwen3` with `template.kwargs.enable_thinking: false`",
    ),
    "qwen2_vl": ("qwen2_vl", ""),
    "vicuna": ("vicuna", ""),
    "xverse": ("xverse", ""),
    "yi": ("yi", ""),
    "yi_vl": ("yi_vl", ""),
    "yuan": ("yuan", ""),
    "zephyr": ("zephyr", ""),
}

#: transformers / LLaMA-Factory defaults that differ from ft-core's and change the result: written into every
#: imported training config that does not set them (key -> (LLaMA-Factory's default, why it is carried)).
CARRIED_DEFAULTS: dict[str, tuple[Any, str]] = {
    "learning_rate": (5e-5, "transformers' default (ft-core's is 1e-4)"),
    "lr_scheduler_type": ("linear", "transformers' default (ft-core's is cosine)"),
    "per_device_train_batch_size": (8, "transformers' default (ft-core's is 1)"),
}


@dataclass
class Translation:
    """What :func:`translate` made of a LLaMA-Factory config."""

    #: The ft-core config (nested sections).
    config: dict[str, Any] = field(default_factory=dict)
    #: (LLaMA-Factory key, its value, where it went / what became of it).
    mapped: list[tuple[str, Any, str]] = field(default_factory=list)
    #: (LLaMA-Factory key, its value, why nothing was written).
    unmapped: list[tuple[str, Any, str]] = field(default_factory=list)
    #: (key, did-you-mean): not a LLaMA-Factory key.
    unknown: list[tuple[str, str]] = field(default_factory=list)
    #: Differences in behaviour the user should know about.
    notes: list[str] = field(default_factory=list)
    #: Reasons the output will not run in this installation (a stage or logger not installed, ...).
    blockers: list[str] = field(default_factory=list)


#: What is installed: kind -> {name: option field names, or None when unknown}. ``None`` for the whole mapping:
#: assume ft-core's first-party plugins.
Available = Mapping[str, Mapping[str, "frozenset[str] | None"]]


#: The plugin distributions (``ft-core-<name>``) of the model patches the importer writes.
_PATCH_PLUGINS = {"shift_attn": "longlora", "mixture_of_depths": "mod"}
#: LLaMA-Factory ``pref_loss`` values that are ft-core stages of their own -> their plugin.
_PREF_LOSS_STAGES = {"orpo": "ft-core-orpo", "simpo": "ft-core-cpo"}
#: ``quantization_method`` -> (ft-core quantizer, the bits it takes, its plugin).
_QUANTIZERS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "bnb": ("bitsandbytes", (4, 8), "ft-core-bitsandbytes"),
    "bitsandbytes": ("bitsandbytes", (4, 8), "ft-core-bitsandbytes"),
    "hqq": ("hqq", (1, 2, 3, 4, 5, 6, 8), "ft-core-hqq"),
    "eetq": ("eetq", (8,), "ft-core-eetq"),
}
_LORA_EXTRAS = ("loraplus_lr_ratio", "pissa_init", "pissa_iter", "pissa_convert")


def _split(value: Any) -> Any:
    """LLaMA-Factory's comma lists (``q_proj,v_proj``) as lists; lists and other values unchanged."""
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _as_list(value: Any) -> list[Any]:
    value = _split(value)
    return value if isinstance(value, list) else [value]


class _Builder:
    def __init__(self, lf: Mapping[str, Any], available: Available | None) -> None:
        # YAML 1.1 reads `5e-5` as a string; LLaMA-Factory's argument parser casts it to the field's float
        self.lf = {k: float(v) if isinstance(v, str) and _FLOAT.match(v) else v for k, v in lf.items()}
        self.available = available
        self.out = Translation()
        self.done: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.lf

    def installed(self, kind: str, name: str) -> bool:
        return self.available is None or name in self.available.get(kind, {})

    def options_of(self, kind: str, name: str) -> frozenset[str] | None:
        if self.available is None:
            return None
        return self.available.get(kind, {}).get(name)

    def put(self, path: str, value: Any) -> None:
        section, _, rest = path.partition(".")
        node = self.out.config.setdefault(section, {})
        parts = rest.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def mapped(self, key: str, where: str) -> None:
        self.done.add(key)
        self.out.mapped.append((key, self.lf[key], where))

    def unmapped(self, key: str, reason: str) -> None:
        self.done.add(key)
        self.out.unmapped.append((key, self.lf[key], reason))

    def simple(self, key: str, path: str, value: Any = None) -> None:
        if key in self.lf:
            value = self.lf[key] if value is None else value
            self.put(path, value)
            self.mapped(key, f"{path}: {value!r}" if not isinstance(value, (list, dict)) else path)

    def component_option(self, section: str, kind: str, name: str, key: str, option: str, value: Any) -> None:
        """``section.option = value`` when the selected component has that option, else an unmapped key."""
        options = self.options_of(kind, name)
        if options is not None and option not in options:
            self.unmapped(key, f"the installed {kind} `{name}` has no option `{option}`")
            return
        self.put(f"{section}.{option}", value)
        self.mapped(key, f"{section}.{option}: {value!r}")

    # -- groups ----------------------------------------------------------------------------------------------
    def training_config(self) -> bool:
        return any(self.has(k) for k in ("stage", "do_train", "finetuning_type", "output_dir", "dataset"))

    def model(self) -> None:
        self.simple("model_name_or_path", "model.name_or_path")
        self.simple("model_revision", "model.revision")
        self.simple("cache_dir", "model.hub_cache_dir")
        self.simple("resize_vocab", "model.resize_vocab")
        for key in ("add_tokens", "add_special_tokens"):
            if self.has(key) and self.lf[key]:
                self.simple(key, f"model.{key}", _as_list(self.lf[key]))
        if self.has("adapter_name_or_path") and self.lf["adapter_name_or_path"]:
            self.simple("adapter_name_or_path", "model.adapters", _as_list(self.lf["adapter_name_or_path"]))
        self.simple("create_new_adapter", "model.create_new_adapter")
        for key in GENERATION_KEYS:
            self.simple(key, f"generation.{key}")
        self.simple("trust_remote_code", "model.trust_remote_code")
        self.simple("rope_scaling", "model.rope_scaling")
        self.simple("freeze_vision_tower", "model.freeze_vision_tower")
        self.simple("freeze_multi_modal_projector", "model.freeze_multi_modal_projector")
        self.simple("use_reentrant_gc", "training.gradient_checkpointing_reentrant")
        if self.has("flash_attn"):
            names = {"auto": "auto", "sdpa": "sdpa", "disabled": "eager", "fa2": "flash_attention_2",
                     "fa3": "flash_attention_3"}  # fmt: skip
            value = str(self.lf["flash_attn"])
            if value in names:
                self.simple("flash_attn", "model.attn_implementation", names[value])
            else:
                self.unmapped(
                    "flash_attn", f"unknown value {value!r} (LLaMA-Factory takes {', '.join(names)})"
                )
        if self.has("infer_dtype") and self.lf["infer_dtype"] in ("auto", "float16", "bfloat16", "float32"):
            self.simple("infer_dtype", "model.dtype")
        if self.has("disable_gradient_checkpointing"):
            if self.lf["disable_gradient_checkpointing"]:
                self.simple("disable_gradient_checkpointing", "training.gradient_checkpointing", False)
            else:
                self.mapped(
                    "disable_gradient_checkpointing", "ft-core's `auto` checkpointing (nothing written)"
                )
        if self.lf.get("use_unsloth_gc"):
            self.simple("use_unsloth_gc", "training.gradient_checkpointing", "offload")
        elif self.has("use_unsloth_gc"):
            self.mapped("use_unsloth_gc", "false: nothing to write")
        for key in ("enable_liger_kernel", "use_liger_kernel"):
            if self.has(key):
                if not self.installed("config_section", "liger"):
                    self.unmapped(key, "ft-core-liger is not installed")
                else:
                    self.simple(key, "liger.enabled", "auto" if self.lf[key] else False)
        if self.has("neftune_noise_alpha"):
            if self.installed("config_section", "neftune"):
                self.simple("neftune_noise_alpha", "neftune.alpha")
            else:
                self.unmapped("neftune_noise_alpha", "ft-core-neftune is not installed")
        self.patches()

    def patches(self) -> None:
        """LongLoRA's ``shift_attn`` and ``mixture_of_depths``: model patches of their plugins."""
        wanted = [
            (key, name, options)
            for key, name, options in (
                ("shift_attn", "shift_attn", {}),
                ("mixture_of_depths", "mixture_of_depths", {"mode": self.lf.get("mixture_of_depths")}),
            )
            if self.has(key)
        ]
        for key, name, options in wanted:
            if not self.lf[key]:
                self.mapped(key, "off: nothing to write")
            elif not self.installed("model_patch", name):
                self.unmapped(
                    key, f"the model patch `{name}` is not installed (ft-core-{_PATCH_PLUGINS[name]})"
                )
            else:
                self.out.config.setdefault("patches", []).append({"name": name, **options})
                self.mapped(
                    key, f"patches: [{{name: {name}{''.join(f', {k}: {v}' for k, v in options.items())}}}]"
                )

    def template(self) -> None:
        if self.has("template"):
            lf_name = str(self.lf["template"])
            name, note = TEMPLATE_NAMES.get(lf_name, ("auto", ""))
            if lf_name not in TEMPLATE_NAMES:
                note = (f"ft-core has no template for LLaMA-Factory's `{lf_name}`: `auto` renders with the "
                        "tokenizer's own chat template (see it with `ft-core template show`)")  # fmt: skip
            if name != "auto" and not self.installed("chat_template", name):
                note = f"the ft-core template `{name}` is not installed (its model family plugin is missing); using `auto`"
                name = "auto"
            self.put("template.name", name)
            self.mapped("template", f"template.name: {name!r}")
            if note:
                self.out.notes.append(f"template {lf_name} -> {name}: {note}")
        self.simple("default_system", "template.system")
        if self.has("enable_thinking"):
            self.simple("enable_thinking", "template.kwargs.enable_thinking")

    def data(self) -> None:
        for key in ("dataset", "eval_dataset"):
            if self.has(key):
                self.simple(key, f"data.{key}", _as_list(self.lf[key]))
        for key in ("dataset_dir", "cutoff_len", "train_on_prompt", "mask_history", "max_samples", "val_size",
                    "overwrite_cache"):  # fmt: skip
            self.simple(key, f"data.{key}")
        self.simple("preprocessing_num_workers", "data.preprocessing_workers")
        for key in ("media_dir", "streaming", "buffer_size", "mix_strategy", "eval_on_each_dataset", "tool_format",
                    "preserve_thinking", "tokenized_path", "image_max_pixels", "image_min_pixels"):  # fmt: skip
            self.simple(key, f"data.{key}")
        if self.has("interleave_probs") and self.lf["interleave_probs"] is not None:
            probs = [float(p) for p in _as_list(self.lf["interleave_probs"])]
            self.simple("interleave_probs", "data.interleave_probs", probs)
        if self.has("tokenized_path"):
            self.out.notes.append(
                "tokenized_path: ft-core saves its own prepared rows there; a folder LLaMA-Factory prepared is not "
                "read, so point it at a new folder (or delete the old one) for the first run"
            )
        if self.lf.get("neat_packing"):
            self.simple("neat_packing", "data.packing", True)
            if self.has("packing"):
                self.mapped("packing", "data.packing (with neat_packing)")
        elif self.has("neat_packing"):
            self.mapped("neat_packing", "false: nothing to write")
        if self.has("packing") and "packing" not in self.done:
            if self.lf["packing"] is None:
                self.mapped("packing", "null: ft-core's defaults (the pt stage packs)")
            else:
                self.simple("packing", "data.packing", bool(self.lf["packing"]))
                if self.lf["packing"]:
                    self.out.notes.append(
                        "packing: ft-core keeps packed samples apart (LLaMA-Factory's neat_packing); LLaMA-Factory's "
                        "packing without neat_packing lets them attend to each other"
                    )

    def stage(self) -> None:
        name = str(self.lf.get("stage", "sft"))
        if name == "dpo" and str(self.lf.get("pref_loss")) in _PREF_LOSS_STAGES:
            name = str(self.lf["pref_loss"])  # LLaMA-Factory trains ORPO / SimPO in its dpo stage
        if self.has("stage"):
            self.put("stage.name", name)
            self.mapped("stage", f"stage.name: {name!r}")
        if not self.installed("stage", name):
            self.out.blockers.append(
                f"stage: ft-core has no `{name}` stage installed"
                + (f" (pip install {_PREF_LOSS_STAGES[name]})" if name in _PREF_LOSS_STAGES else "")
                + (
                    f" (installed: {', '.join(sorted(self.available.get('stage', {})))})"
                    if self.available
                    else ""
                )
            )
        if name == "pt" and self.has("packing") and self.lf["packing"] is not None:
            # the pt stage's own option says whether pretraining text is packed
            self.put("stage.packing", bool(self.lf["packing"]))
        for key, option in (
            ("kto_chosen_weight", "desirable_weight"),
            ("kto_rejected_weight", "undesirable_weight"),
        ):
            if self.has(key):
                if name != "kto":
                    self.unmapped(key, f"only used by `stage: kto` (this is `stage: {name}`)")
                else:
                    self.component_option("stage", "stage", name, key, option, self.lf[key])
        self.ppo_options(name)
        for key, option in (("pref_beta", "beta"), ("pref_ftx", "ftx")):
            if self.has(key):
                if key == "pref_ftx" and name == "orpo":
                    self.unmapped(
                        key, "ORPO's loss always has its SFT term (pref_beta weighs the odds-ratio term)"
                    )
                elif name in ("sft", "pt"):
                    self.unmapped(key, f"only used by preference stages (this is `stage: {name}`)")
                else:
                    self.component_option("stage", "stage", name, key, option, self.lf[key])
        if name == "simpo" and self.installed("stage", "simpo"):
            gamma = self.lf.get("simpo_gamma", 0.5)  # LLaMA-Factory's default (ft-core's is 1.0)
            if self.has("simpo_gamma"):
                self.component_option("stage", "stage", name, "simpo_gamma", "simpo_gamma", gamma)
            else:
                self.put("stage.simpo_gamma", gamma)
                self.out.notes.append("stage.simpo_gamma: 0.5 — LLaMA-Factory's default (ft-core's is 1.0)")
        elif self.has("simpo_gamma"):
            self.unmapped("simpo_gamma", f"only used with `pref_loss: simpo` (this is `stage: {name}`)")
        if self.has("pref_loss"):
            loss = str(self.lf["pref_loss"])
            if name in _PREF_LOSS_STAGES:
                self.mapped("pref_loss", f"stage.name: {name!r} ({_PREF_LOSS_STAGES[name]})")
            elif name != "dpo":
                self.unmapped("pref_loss", f"only used by `stage: dpo` (this is `stage: {name}`)")
            else:
                self.component_option("stage", "stage", name, "pref_loss", "loss_type", loss)
        if self.has("dpo_label_smoothing"):
            value = self.lf["dpo_label_smoothing"]
            loss = str(self.lf.get("pref_loss", "sigmoid"))
            if not value:
                self.mapped("dpo_label_smoothing", "0: nothing to write")
            elif name == "orpo":
                self.unmapped("dpo_label_smoothing", "ORPO's loss has no label smoothing")
            else:
                self.component_option("stage", "stage", name, "dpo_label_smoothing", "label_smoothing", value)

    def adapter(self) -> None:
        method = str(self.lf.get("finetuning_type", "lora"))
        if self.has("finetuning_type") and method not in ("lora", "freeze", "full"):
            self.unmapped("finetuning_type", f"`{method}` is not available (ft-core: lora, freeze, full)")
            self.out.blockers.append(f"finetuning_type: {method} has no ft-core adapter method")
            return
        unsloth = bool(self.lf.get("use_unsloth")) and method == "lora"
        if self.has("use_unsloth"):
            if unsloth and self.installed("config_section", "unsloth"):
                self.put("unsloth.enabled", True)
                self.mapped("use_unsloth", "unsloth.enabled: true, adapter.method: 'unsloth_lora'")
            elif self.lf["use_unsloth"]:
                why = (
                    "ft-core-unsloth is not installed"
                    if method == "lora"
                    else f"Unsloth with {method} tuning is not supported"
                )
                self.unmapped("use_unsloth", why)
                unsloth = False
            else:
                self.mapped("use_unsloth", "false: nothing to write")
        llama_pro = self.llama_pro(method)
        selected = "llama_pro" if llama_pro else "unsloth_lora" if unsloth else method
        if not self.training_config() and not self.has("finetuning_type"):
            return
        self.put("adapter.method", selected)
        if self.has("finetuning_type"):
            self.mapped("finetuning_type", f"adapter.method: {selected!r}")
        if llama_pro:
            layers = self.lf.get("freeze_trainable_layers", 2)  # LLaMA-Factory's default
            self.put("adapter.num_expand", layers)
            if self.has("freeze_trainable_layers"):
                self.mapped("freeze_trainable_layers", f"adapter.num_expand: {layers!r}")
            if method == "lora":
                self.put("adapter.use_lora", True)
            for key in ("freeze_trainable_modules", "freeze_extra_modules"):
                if self.has(key):
                    self.unmapped(key, "LLaMA Pro trains the new blocks (all their modules)")
        if method == "lora":
            rank = self.lf.get("lora_rank", 8)
            self.put("adapter.rank", rank)
            if self.has("lora_rank"):
                self.mapped("lora_rank", f"adapter.rank: {rank!r}")
            alpha = self.lf.get("lora_alpha")
            if alpha is None:
                alpha = rank * 2  # both default to 2 x rank; written so the config says what trains
            self.put("adapter.alpha", alpha)
            if self.has("lora_alpha"):
                self.mapped("lora_alpha", f"adapter.alpha: {alpha!r}")
            for key, option in (("lora_dropout", "dropout"), ("use_rslora", "use_rslora")):
                if self.has(key):
                    self.component_option("adapter", "adapter", selected, key, option, self.lf[key])
            if self.has("use_dora"):
                self.component_option(
                    "adapter", "adapter", selected, "use_dora", "use_dora", self.lf["use_dora"]
                )
            if self.has("lora_target"):
                targets = _split(self.lf["lora_target"])
                self.component_option("adapter", "adapter", selected, "lora_target", "targets", targets)
            if self.has("additional_target") and self.lf["additional_target"]:
                self.component_option(
                    "adapter", "adapter", selected, "additional_target", "modules_to_save",
                    _as_list(self.lf["additional_target"]),
                )  # fmt: skip
            self.lora_extras(selected)
        elif method == "freeze" and not llama_pro:
            for key, option in (("freeze_trainable_layers", "trainable_layers"),
                                ("freeze_trainable_modules", "trainable_modules"),
                                ("freeze_extra_modules", "extra_modules")):  # fmt: skip
                if self.has(key) and self.lf[key] is not None:
                    value = self.lf[key] if option == "trainable_layers" else _as_list(self.lf[key])
                    self.component_option("adapter", "freeze", "freeze", key, option, value)
        for key in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target", "additional_target", "use_rslora",
                    "use_dora", "freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules",
                    *_LORA_EXTRAS):  # fmt: skip
            if self.has(key) and key not in self.done:
                self.unmapped(key, f"not used with finetuning_type: {method}")

    def llama_pro(self, method: str) -> bool:
        """``use_llama_pro``: whether the ``llama_pro`` adapter method (ft-core-llama-pro) is selected."""
        if not self.has("use_llama_pro"):
            return False
        if not self.lf["use_llama_pro"]:
            self.mapped("use_llama_pro", "false: nothing to write")
        elif method not in ("freeze", "lora"):
            self.unmapped(
                "use_llama_pro", f"LLaMA Pro needs finetuning_type freeze or lora (this is {method})"
            )
        elif not self.installed("adapter", "llama_pro"):
            self.unmapped(
                "use_llama_pro", "the adapter method `llama_pro` is not installed (ft-core-llama-pro)"
            )
            self.out.blockers.append("use_llama_pro: pip install ft-core-llama-pro")
        else:
            self.mapped("use_llama_pro", "adapter.method: 'llama_pro' (num_expand: freeze_trainable_layers)")
            self.out.notes.append(
                "use_llama_pro: give model_name_or_path the original model; ft-core's llama_pro expands it while "
                "loading (a model LLaMA-Factory's llama_pro.py already expanded would be expanded twice)"
            )
            return True
        return False

    def lora_extras(self, selected: str) -> None:
        """LoRA+ and PiSSA: options of ft-core-lora's ``lora`` method."""
        if self.has("loraplus_lr_ratio") and self.lf["loraplus_lr_ratio"] is not None:
            ratio = self.lf["loraplus_lr_ratio"]
            self.component_option(
                "adapter", "adapter", selected, "loraplus_lr_ratio", "lora_plus_ratio", ratio
            )
        if not self.lf.get("pissa_init"):
            if self.has("pissa_init"):
                self.mapped("pissa_init", "false: nothing to write")
            for key in ("pissa_iter", "pissa_convert"):
                if self.has(key):
                    self.unmapped(key, "only used with pissa_init: true")
            return
        self.component_option("adapter", "adapter", selected, "pissa_init", "init", "pissa")
        if "pissa_init" not in {k for k, _, _ in self.out.mapped}:
            for key in ("pissa_iter", "pissa_convert"):
                if self.has(key):
                    self.unmapped(key, f"PiSSA is not available with adapter.method {selected}")
            return
        if self.has("pissa_iter"):
            iters = max(int(self.lf["pissa_iter"]), 0)  # LLaMA-Factory's -1: exact SVD
            self.component_option("adapter", "adapter", selected, "pissa_iter", "pissa_iter", iters)
        if self.has("pissa_convert"):
            if self.lf["pissa_convert"]:
                self.mapped(
                    "pissa_convert", "ft-core always saves PiSSA as a plain LoRA adapter of the original base"
                )
            else:
                self.unmapped("pissa_convert", BY_KEY["pissa_convert"].note)

    def quantization(self) -> None:
        if self.lf.get("quantization_bit") is None:
            for key in ("quantization_method", "quantization_type", "double_quantization", "upcast_layernorm",
                        "quantization_bit"):  # fmt: skip
                if self.has(key):
                    self.unmapped(key, "no quantization_bit: the model is not quantized")
            return
        method = str(self.lf.get("quantization_method", "bnb"))
        bits = self.lf["quantization_bit"]
        quantizer, allowed, plugin = _QUANTIZERS.get(method, ("", (), ""))
        if bits not in allowed or not self.installed("quantizer", quantizer):
            why = (
                f"the quantizer `{quantizer}` is not installed ({plugin})"
                if bits in allowed
                else f"{bits}-bit {method} quantization is not available (bitsandbytes 4 / 8, hqq 1-6 / 8, eetq 8)"
            )
            self.unmapped("quantization_bit", why)
            if self.has("quantization_method"):
                self.unmapped("quantization_method", why)
            self.out.blockers.append(f"quantization: {bits}-bit {method}: {why}")
            for key in ("quantization_type", "double_quantization", "upcast_layernorm"):
                if self.has(key):
                    self.unmapped(key, "the model is not quantized")
            return
        self.put("quantization.method", quantizer)
        self.put("quantization.bits", bits)
        self.mapped("quantization_bit", f"quantization: {{method: {quantizer}, bits: {bits}}}")
        if self.has("quantization_method"):
            self.mapped("quantization_method", f"quantization.method: {quantizer!r}")
        if quantizer != "bitsandbytes":
            for key in ("quantization_type", "double_quantization", "upcast_layernorm"):
                if self.has(key):
                    self.unmapped(key, "only used by bitsandbytes quantization")
            return
        if bits == 4:
            quant_type = self.lf.get("quantization_type", "nf4")
            double = self.lf.get("double_quantization", True)
            self.put("quantization.quant_type", quant_type)
            self.put("quantization.double_quant", bool(double))
            for key in ("quantization_type", "double_quantization"):
                if self.has(key):
                    self.mapped(
                        key,
                        "quantization." + ("quant_type" if key == "quantization_type" else "double_quant"),
                    )
        else:
            for key in ("quantization_type", "double_quantization"):
                if self.has(key):
                    self.unmapped(key, "only used by 4-bit quantization")
        if self.lf.get("upcast_layernorm"):
            self.simple("upcast_layernorm", "quantization.upcast", "norms")
        elif self.has("upcast_layernorm"):
            self.mapped("upcast_layernorm", "false: nothing to write")

    def training(self) -> None:
        for key in ("output_dir", "overwrite_output_dir", "num_train_epochs", "max_steps",
                    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                    "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_ratio", "warmup_steps",
                    "max_grad_norm", "logging_steps", "save_steps", "save_total_limit", "eval_steps", "seed",
                    "gradient_checkpointing", "torch_compile", "use_cpu", "dataloader_num_workers",
                    "ddp_find_unused_parameters", "plot_loss"):  # fmt: skip
            if key in self.lf and key not in self.done:
                self.simple(key, f"training.{key}")
        if self.has("no_cuda"):
            self.simple("no_cuda", "training.use_cpu")
        self.simple("evaluation_strategy", "training.eval_strategy")
        if self.has("group_by_length"):
            if self.lf["group_by_length"]:
                self.simple("group_by_length", "training.train_sampling_strategy", "group_by_length")
            else:
                self.mapped("group_by_length", "false: nothing to write")
        if self.has("resume_from_checkpoint"):
            value = self.lf["resume_from_checkpoint"]
            if value is None:
                self.mapped("resume_from_checkpoint", "null: ft-core's `auto` (nothing written)")
            else:
                self.simple("resume_from_checkpoint", "training.resume", value)
        precision = None
        if self.lf.get("pure_bf16"):
            precision = "bf16"
            self.put("model.dtype", "bfloat16")
            self.put("training.upcast_trainable", False)
            self.mapped("pure_bf16", "model.dtype: 'bfloat16', training.upcast_trainable: false")
        for key in ("bf16", "fp16"):
            if self.has(key):
                if self.lf[key]:
                    precision = key
                    self.mapped(key, f"training.precision: {key!r}")
                else:
                    self.mapped(key, "false: nothing to write")
        if self.has("pure_bf16") and "pure_bf16" not in self.done:
            self.mapped("pure_bf16", "false: nothing to write")
        if precision is None and self.training_config():
            precision = "fp32"
            self.out.notes.append(
                "training.precision: fp32 — LLaMA-Factory trains in fp32 when neither bf16 nor fp16 is set; drop "
                "the key to let ft-core pick bf16 on GPUs that support it"
            )
        if precision is not None:
            self.put("training.precision", precision)
        if self.training_config():
            for key, (value, why) in CARRIED_DEFAULTS.items():
                if key not in self.lf:
                    self.put(f"training.{key}", value)
                    self.out.notes.append(f"training.{key}: {value!r} — LLaMA-Factory's default, {why}")
        self.optimizer()

    def optimizer(self) -> None:
        """``optim``, LLaMA-Factory's ``use_galore`` / ``use_apollo`` / ``use_badam`` / ``use_muon`` with their
        options, and Adam's betas and epsilon."""
        name = self.optimizer_switch()
        optim = self.lf.get("optim")
        if optim is not None and name != "adamw":
            self.unmapped("optim", f"not used: `{name}` is the optimizer")
        elif optim is not None and str(optim) not in ADAMW_OPTIMS:
            self.unmapped("optim", f"`{optim}` is not available (ft-core: {', '.join(ADAMW_OPTIMS)})")
        elif optim is not None:
            self.put("optimizer.name", "adamw")
            for option, value in ADAMW_OPTIMS[str(optim)].items():
                self.put(f"optimizer.{option}", value)
            self.mapped("optim", f"optimizer: {{name: adamw, **{ADAMW_OPTIMS[str(optim)]}}}")
        betas_option, eps_option = ("adamw_betas", "adamw_eps") if name == "muon" else ("betas", "eps")
        if self.has("adam_beta1") or self.has("adam_beta2"):
            betas = [self.lf.get("adam_beta1", 0.9), self.lf.get("adam_beta2", 0.999)]
            self.put("optimizer.name", name)
            self.put(f"optimizer.{betas_option}", betas)
            for key in ("adam_beta1", "adam_beta2"):
                if self.has(key):
                    self.mapped(key, f"optimizer.{betas_option}: {betas}")
        if self.has("adam_epsilon"):
            self.put("optimizer.name", name)
            self.simple("adam_epsilon", f"optimizer.{eps_option}")

    def optimizer_switch(self) -> str:
        """The optimizer LLaMA-Factory's ``use_*`` switches select (``adamw`` without one), its options written."""
        chosen = "adamw"
        for switch, (name, plugin, options) in OPTIMIZER_SWITCHES.items():
            if not self.has(switch):
                continue
            on = bool(self.lf[switch])
            if not on:
                self.mapped(switch, "false: nothing to write")
            elif chosen != "adamw":
                self.unmapped(switch, f"one optimizer at a time: `{chosen}` is already selected")
                on = False
            elif not self.installed("optimizer", name):
                self.unmapped(switch, f"the optimizer `{name}` is not installed ({plugin})")
                self.out.blockers.append(f"{switch}: pip install {plugin}")
                on = False
            else:
                chosen = name
                self.put("optimizer.name", name)
                self.mapped(switch, f"optimizer.name: {name!r}")
            for key, option in options.items():
                if not self.has(key):
                    continue
                if on:
                    value = _split(self.lf[key]) if option == "targets" else self.lf[key]
                    self.component_option("optimizer", "optimizer", name, key, option, value)
                else:
                    self.unmapped(key, f"only used with {switch}: true")
        return chosen

    def distributed(self) -> None:
        """``deepspeed`` (a DeepSpeed JSON file) and ``fsdp``: ft-core's strategy plugins, one process per GPU."""
        if self.lf.get("deepspeed"):
            stage, offload_optimizer, offload_params = _deepspeed_settings(self.lf["deepspeed"])
            if stage is None:
                self.unmapped(
                    "deepspeed", "no ZeRO stage found in the file (or its name); " + BY_KEY["deepspeed"].note
                )
            elif stage < 2:
                self.unmapped(
                    "deepspeed", f"ZeRO-{stage}: ft-core runs plain DDP (`distributed.nproc: auto`)"
                )
                self.put("distributed.nproc", "auto")
            elif not self.installed("config_section", "deepspeed"):
                self.unmapped("deepspeed", "ft-core-deepspeed is not installed")
                self.out.blockers.append("deepspeed: pip install ft-core-deepspeed")
            else:
                self.put("distributed.strategy", "deepspeed")
                self.put("distributed.nproc", "auto")
                self.put("deepspeed.stage", stage)
                if offload_optimizer:
                    self.put("deepspeed.offload_optimizer", True)
                if offload_params:
                    self.put("deepspeed.offload_params", True)
                self.mapped("deepspeed", f"distributed.strategy: deepspeed, deepspeed.stage: {stage}")
        elif self.has("deepspeed"):
            self.mapped("deepspeed", "none: nothing to write")
        if self.has("fsdp"):
            value: Any = self.lf["fsdp"]
            words = set(value.split() if isinstance(value, str) else list(value or ()))
            if not words:
                self.mapped("fsdp", "none: nothing to write")
            elif (
                "hybrid_shard" in words
                or "hybrid_shard_zero2" in words
                or not words & {"full_shard", "shard_grad_op"}
            ):
                self.unmapped("fsdp", BY_KEY["fsdp"].note)
            elif "distributed" in self.out.config:
                self.unmapped("fsdp", "deepspeed is already the strategy")
            elif not self.installed("config_section", "fsdp"):
                self.unmapped("fsdp", "ft-core-fsdp is not installed")
                self.out.blockers.append("fsdp: pip install ft-core-fsdp")
            else:
                self.put("distributed.strategy", "fsdp")
                self.put("distributed.nproc", "auto")
                if "shard_grad_op" in words:
                    self.put("fsdp.reshard_after_forward", False)
                if "offload" in words:
                    self.put("fsdp.cpu_offload", True)
                self.mapped("fsdp", "distributed.strategy: fsdp")

    def loggers(self) -> None:
        if not self.has("report_to"):
            return
        wanted = [str(v) for v in _as_list(self.lf["report_to"]) if v not in (None, "none")]
        if wanted == ["all"]:
            wanted = ["tensorboard"]
        chosen: list[Any] = []
        for name in wanted:
            if self.installed("logger", name):
                entry: dict[str, Any] = {"name": name}
                if name == "tensorboard" and self.has("logging_dir"):
                    entry["log_dir"] = self.lf["logging_dir"]
                    self.mapped("logging_dir", "loggers[tensorboard].log_dir")
                options = self.options_of("logger", name)
                takes_name = "run_name" in options if options is not None else name in ("wandb", "mlflow")
                if self.has("run_name") and takes_name:
                    entry["run_name"] = self.lf["run_name"]
                    if "run_name" not in self.done:
                        self.mapped("run_name", "loggers[*].run_name")
                chosen.append(entry)
            else:
                self.out.notes.append(f"report_to: {name} has no ft-core logger installed; left out")
        if chosen:
            self.out.config["loggers"] = chosen
        self.mapped("report_to", f"loggers: {[c['name'] for c in chosen]}")

    def ppo_options(self, name: str) -> None:
        """LLaMA-Factory's ``ppo_*`` keys, ``reward_model`` and generating arguments as the ppo stage's options."""
        keys = (
            ("ppo_epochs", "ppo_epochs"),
            ("ppo_target", "target"),
            ("ppo_whiten_rewards", "whiten_rewards"),
            ("ppo_score_norm", "score_norm"),
            ("ppo_buffer_size", "num_mini_batches"),
            ("reward_model", "reward_model"),
        )
        for key, option in keys:
            if not self.has(key):
                continue
            if name != "ppo":
                self.unmapped(key, f"only used by `stage: ppo` (this is `stage: {name}`)")
            elif not self.installed("stage", "ppo"):
                self.unmapped(key, "needs the ppo stage: pip install ft-core-ppo")
            else:
                self.component_option("stage", "stage", name, key, option, self.lf[key])
        if name == "ppo" and self.installed("stage", "ppo"):
            for key in ("reward_model_type", "reward_model_adapters", "reward_model_quantization_bit"):
                if self.has(key):
                    self.unmapped(key, _PPO_RM)
            for key in ("max_new_tokens", "temperature", "top_k", "top_p"):  # the rollouts' sampling
                if self.has(key) and key in (self.options_of("stage", "ppo") or {key}):
                    self.put(f"stage.{key}", self.lf[key])
            if self.has("reward_model"):
                self.out.notes.append(
                    "stage.reward_model: point it at a finished ft-core rm run (ft-core run with stage: rm) or name "
                    "reward functions (exact_match, format, length, package.module:function)"
                )

    def ppo_batch(self) -> None:
        """ft-core's ppo rollout batch is ``per_device_train_batch_size`` split into ``num_mini_batches``, without
        gradient accumulation; LLaMA-Factory's is the batch x accumulation x ``ppo_buffer_size``."""
        training = self.out.config.get("training", {})
        if self.out.config.get("stage", {}).get("name") != "ppo" or not self.installed("stage", "ppo"):
            return
        buffer = int(self.lf.get("ppo_buffer_size", 1))
        steps = int(training.get("gradient_accumulation_steps", 1))
        if buffer * steps == 1:
            return
        batch = int(training.get("per_device_train_batch_size", 1))
        training["per_device_train_batch_size"] = batch * steps * buffer
        training["gradient_accumulation_steps"] = 1
        self.put("stage.num_mini_batches", buffer)
        self.out.notes.append(
            f"ppo: training.per_device_train_batch_size {batch} -> {batch * steps * buffer} (the rollout batch: "
            f"x gradient_accumulation_steps {steps} x ppo_buffer_size {buffer}), gradient_accumulation_steps -> 1, "
            f"stage.num_mini_batches: {buffer} (one optimizer step per mini-batch, as LLaMA-Factory)"
        )

    def kto_batch(self) -> None:
        """ft-core's kto stage estimates the KL term from the other rows of a batch (TRL), so a device batch needs 2
        rows; LLaMA-Factory pairs each row with a mismatched answer and runs with 1. Keep the effective batch."""
        training = self.out.config.get("training", {})
        if (
            self.out.config.get("stage", {}).get("name") != "kto"
            or training.get("per_device_train_batch_size", 2) >= 2
        ):
            return
        training["per_device_train_batch_size"] = 2
        steps = training.get("gradient_accumulation_steps", 1)
        if steps % 2 == 0:
            training["gradient_accumulation_steps"] = steps // 2
        self.out.notes.append(
            "kto: training.per_device_train_batch_size 1 -> 2"
            + (
                f" and gradient_accumulation_steps {steps} -> {steps // 2} (same effective batch)"
                if steps % 2 == 0
                else ""
            )
            + ": ft-core's kto stage estimates the KL term from the other rows of a batch; LLaMA-Factory pairs each "
            "row with a mismatched answer instead"
        )

    def export(self) -> None:
        if self.has("export_dir"):
            self.out.notes.append(
                f"export: train with `ft-core run`, then `ft-core export RUN_DIR --output {self.lf['export_dir']}` "
                "(ft-core-export) merges the adapter into the base model"
            )

    def rest(self) -> None:
        from ft_core.engine.config.training_arguments import OWNED, PASSTHROUGH

        training_fields = self.options_of("training", "training")
        for key, value in self.lf.items():
            if key in self.done:
                continue
            if key in PASSTHROUGH:  # a TrainingArguments field the training section passes on as given
                self.simple(key, f"training.{key}")
                continue
            setting = BY_KEY.get(key)
            if setting is None and key in OWNED:
                self.unmapped(key, OWNED[key])
                continue
            if setting is None and key in HF_TRAINING_FIELDS:
                if training_fields is not None and key in training_fields:
                    self.simple(key, f"training.{key}")
                else:
                    self.unmapped(key, "a transformers TrainingArguments field that ft-core's training section does "
                                       "not take")  # fmt: skip
                continue
            if setting is None:
                self.done.add(key)
                hint = _did_you_mean(key)
                self.out.unknown.append((key, hint))
                continue
            if setting.status == "equivalent" and setting.target is None:
                self.mapped(key, setting.note or "nothing to write")
            elif (
                (setting.status == "partial" and setting.target is None)
                or setting.target is None
                or setting.status == "none"
            ):
                self.unmapped(key, setting.note)
            else:
                self.unmapped(key, f"not used in this config ({setting.note or setting.target})")
            del value


def _deepspeed_settings(value: Any) -> tuple[int | None, bool, bool]:
    """(ZeRO stage, offload optimizer, offload parameters) of a DeepSpeed config: a dict, a JSON file, or when the
    file is not there its name as LLaMA-Factory's examples spell it (``ds_z3_offload_config.json``)."""
    config: Any = value
    if isinstance(value, str):
        path = Path(value)
        if path.is_file():
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                config = None
        else:
            match = re.search(r"z(\d)(_offload)?", path.name)
            if match is None:
                return None, False, False
            offload = bool(match.group(2))
            return int(match.group(1)), offload, offload and match.group(1) == "3"
    if not isinstance(config, dict):
        return None, False, False
    zero = config.get("zero_optimization") or {}
    stage = zero.get("stage")

    def offloaded(key: str) -> bool:
        return str((zero.get(key) or {}).get("device", "none")) not in ("none", "None")

    return (
        (int(stage) if stage is not None else None),
        offloaded("offload_optimizer"),
        offloaded("offload_param"),
    )


def _did_you_mean(key: str) -> str:
    matches = difflib.get_close_matches(key, ALL_LF_KEYS, n=1, cutoff=0.75)
    return matches[0] if matches else ""


def looks_like_llamafactory(raw: Mapping[str, Any], known: Collection[str] = ()) -> bool:
    """Whether a config's top level has LLaMA-Factory's flat keys: two or more of its characteristic ones that are not
    ft-core sections (``known``; ``stage: sft`` and ``template: qwen`` are ft-core shorthands too)."""
    marks = ("model_name_or_path", "finetuning_type", "dataset", "output_dir", "do_train", "cutoff_len",
             "lora_rank", "lora_target", "learning_rate", "num_train_epochs", "per_device_train_batch_size")  # fmt: skip
    return sum(1 for key in marks if key in raw and key not in known) >= 2


def translate(lf: Mapping[str, Any], available: Available | None = None) -> Translation:
    """A flat LLaMA-Factory config as an ft-core config, with what became of every key.

    ``available``: installed component names per kind with their option names (``{"stage": {"dpo":
    frozenset({"beta", ...})}, "training": {"training": frozenset(<training fields>)}, ...}``); ``None``: assume
    ft-core's first-party plugins.
    """
    builder = _Builder(lf, available)
    steps: list[Callable[[], None]] = [
        builder.model, builder.template, builder.data, builder.stage, builder.adapter, builder.quantization,
        builder.training, builder.distributed, builder.loggers, builder.kto_batch, builder.ppo_batch, builder.export, builder.rest,
    ]  # fmt: skip
    for step in steps:
        step()
    order = (
        "model",
        "template",
        "data",
        "stage",
        "adapter",
        "quantization",
        "optimizer",
        "training",
        "loggers",
    )
    config = builder.out.config
    builder.out.config = {k: config[k] for k in order if k in config} | {
        k: v for k, v in config.items() if k not in order
    }
    return builder.out


def coverage(*, dataset_info: bool = False) -> dict[str, int]:
    """Counts over LLaMA-Factory's own argument classes (with ``dataset_info``: plus the ``dataset_info.json``
    attributes): equivalent, partial, documented none, missing (no row)."""
    keys = list(dict.fromkeys(k for fields in LF_ARGUMENT_CLASSES.values() for k in fields))
    counts = {"equivalent": 0, "partial": 0, "none": 0, "missing": 0}
    for key in keys:
        setting = BY_KEY.get(key)
        counts[setting.status if setting else "missing"] += 1
    if dataset_info:
        for setting in DATASET_INFO_SETTINGS:
            counts[setting.status] += 1
    counts["total"] = sum(counts.values())
    return counts


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def mapping_markdown() -> str:
    """The mapping tables of ``docs/coming-from-llamafactory.md`` (between its generated-section markers)."""
    lines = []
    for label, counts in (
        ("LLaMA-Factory's own argument classes", coverage()),
        ("the same plus the `dataset_info.json` attributes", coverage(dataset_info=True)),
    ):
        lines.append(
            f"- Over {label} ({counts['total']} settings): **{counts['equivalent']} equivalent**, "
            f"**{counts['partial']} partial**, **{counts['none']} with a documented reason for none**, "
            f"{counts['missing']} missing."
        )
    lines.append("")
    groups = [*list(LF_ARGUMENT_CLASSES), HF_GROUP]
    for group in groups:
        rows = [s for s in SETTINGS if s.group == group]
        lines += [
            f"### {group}",
            "",
            "| LLaMA-Factory | ft-core | status | notes |",
            "| --- | --- | --- | --- |",
        ]
        for s in rows:
            target = f"`{s.target}`" if s.target else "-"
            lines.append(f"| `{s.key}` | {target} | {s.status} | {_cell(s.note)} |")
        lines.append("")
    lines += [
        f"### {DATASET_INFO_GROUP}",
        "",
        "ft-core reads LLaMA-Factory's `dataset_info.json` as it is (`data.dataset_dir`); the importer leaves it alone.",
        "",
        "| attribute | ft-core | status | notes |",
        "| --- | --- | --- | --- |",
    ]
    for s in DATASET_INFO_SETTINGS:
        target = f"`{s.target}`" if s.target else "-"
        lines.append(f"| `{s.key}` | {target} | {s.status} | {_cell(s.note)} |")
    lines += [
        "",
        "Other `transformers` `TrainingArguments` fields: `training.<name>` where ft-core's training section takes "
        "the field, else listed by the importer as not taken.",
        "",
        "### Templates",
        "",
        "| LLaMA-Factory `template` | ft-core `template.name` | how they differ |",
        "| --- | --- | --- |",
    ]
    for lf_name, (name, note) in TEMPLATE_NAMES.items():
        lines.append(f"| `{lf_name}` | `{name}` | {_cell(note) or 'same rendering'} |")
    lines += [
        "| any other | `auto` | the tokenizer's own chat template |",
        "",
        "### Defaults carried by the importer",
        "",
        "| key | LLaMA-Factory's default | why |",
        "| --- | --- | --- |",
        "| `adapter.alpha` | 2 x `lora_rank` | the same default; written so the config says what trains |",
        "| `quantization.quant_type` / `double_quant` | nf4 / true | written whenever 4-bit quantizing |",
        "| `training.precision` | fp32 when neither bf16 nor fp16 | ft-core's `auto` picks bf16 on GPUs |",
    ]
    for key, (value, why) in CARRIED_DEFAULTS.items():
        lines.append(f"| `training.{key}` | `{value}` | {why} |")
    return "\n".join(lines) + "\n"
