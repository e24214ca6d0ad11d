"""LLaMA-Factory's flat config keys and where each lives in an ft-core config, for migration hints."""

from __future__ import annotations

LLAMAFACTORY_KEYS: dict[str, str] = {
    "model_name_or_path": "model.name_or_path",
    "trust_remote_code": "model.trust_remote_code",
    "flash_attn": (
        "model.attn_implementation (`auto`, the default, picks flash-attention where it is installed; `fa2` is "
        "`flash_attention_2`, `sdpa` and `eager` keep their names)"
    ),
    "rope_scaling": "model.rope_scaling (e.g. `rope_scaling: yarn`, or `{type: yarn, factor: 4.0}`)",
    "use_unsloth": (
        "`unsloth: {enabled: true}` with `adapter.method: unsloth_lora` (ft-core-unsloth; the adapter's options "
        "are lora's)"
    ),
    "use_unsloth_gc": "training.gradient_checkpointing: offload (activations offloaded to CPU memory)",
    "enable_thinking": "template.kwargs.enable_thinking (e.g. `template: {kwargs: {enable_thinking: false}}`)",
    "template": "template",
    "default_system": "template.system",
    "dataset": "data.dataset",
    "eval_dataset": "data.eval_dataset",
    "dataset_dir": "data.dataset_dir",
    "cutoff_len": "data.cutoff_len",
    "train_on_prompt": "data.train_on_prompt",
    "mask_history": "data.mask_history",
    "max_samples": "data.max_samples",
    "val_size": "data.val_size",
    "overwrite_cache": "data.overwrite_cache",
    "cache_dir": "model.hub_cache_dir (the Hugging Face download cache; data.cache_dir is ft-core's data cache)",
    "model_revision": "model.revision",
    "adapter_name_or_path": "model.adapters (a list of adapter or run folders)",
    "create_new_adapter": "model.create_new_adapter",
    "add_tokens": "model.add_tokens",
    "add_special_tokens": "model.add_special_tokens",
    "resize_vocab": "model.resize_vocab",
    "do_sample": "generation.do_sample",
    "temperature": "generation.temperature",
    "top_p": "generation.top_p",
    "top_k": "generation.top_k",
    "num_beams": "generation.num_beams",
    "max_new_tokens": "generation.max_new_tokens",
    "repetition_penalty": "generation.repetition_penalty",
    "length_penalty": "generation.length_penalty",
    "dpo_label_smoothing": "stage.label_smoothing (dpo; with loss_type sigmoid: conservative DPO)",
    "stage": "stage (e.g. `stage: sft`)",
    "do_train": "no key at all: `ft-core run` trains (drop it)",
    "do_eval": "data.val_size or data.eval_dataset (evaluation runs when there is evaluation data)",
    "finetuning_type": "adapter.method",
    "lora_rank": "adapter.rank",
    "lora_alpha": "adapter.alpha",
    "lora_dropout": "adapter.dropout",
    "lora_target": "adapter.targets",
    "additional_target": "adapter.modules_to_save",
    "use_rslora": "adapter.use_rslora",
    "use_dora": "adapter.use_dora",
    "freeze_trainable_layers": "adapter.trainable_layers",
    "freeze_trainable_modules": "adapter.trainable_modules",
    "freeze_extra_modules": "adapter.extra_modules",
    "packing": "data.packing (padding-free packing for sft and pt; `auto`, the default, packs on GPU runs)",
    "neat_packing": (
        "data.packing (ft-core's packing keeps samples apart, as neat_packing does; `auto`, the default, packs "
        "on GPU runs)"
    ),
    "quantization_bit": "quantization.bits (with `quantization: bitsandbytes`)",
    "quantization_method": "quantization.method (e.g. `quantization: bitsandbytes`)",
    "quantization_type": "quantization.quant_type",
    "double_quantization": "quantization.double_quant",
    "upcast_layernorm": "quantization.upcast: norms",
    "enable_liger_kernel": (
        "no key at all (drop it): with ft-core-liger installed, Liger kernels are on by default on GPU runs of "
        "the models it supports (`liger: {enabled: auto}`; `liger: {enabled: false}` turns them off)"
    ),
    "neftune_noise_alpha": "neftune.alpha",
    "pref_beta": "stage.beta (dpo)",
    "pref_loss": "stage.loss_type (dpo)",
    "pref_ftx": "stage.ftx (dpo)",
    "preprocessing_num_workers": "data.preprocessing_workers",
    "tokenized_path": "data.tokenized_path",
    "media_dir": "data.media_dir",
    "streaming": "data.streaming",
    "buffer_size": "data.buffer_size",
    "mix_strategy": "data.mix_strategy",
    "interleave_probs": "data.interleave_probs (a list: `[0.7, 0.3]`)",
    "eval_on_each_dataset": "data.eval_on_each_dataset",
    "tool_format": "data.tool_format",
    "preserve_thinking": "data.preserve_thinking",
    "image_max_pixels": "data.image_max_pixels",
    "image_min_pixels": "data.image_min_pixels",
    "ddp_find_unused_parameters": "training.ddp_find_unused_parameters",
    "report_to": "loggers (e.g. `loggers: [tensorboard]`)",
    "output_dir": "training.output_dir",
    "overwrite_output_dir": "training.overwrite_output_dir",
    "resume_from_checkpoint": "training.resume",
    "num_train_epochs": "training.num_train_epochs",
    "max_steps": "training.max_steps",
    "per_device_train_batch_size": "training.per_device_train_batch_size",
    "per_device_eval_batch_size": "training.per_device_eval_batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "learning_rate": "training.learning_rate",
    "weight_decay": "training.weight_decay",
    "lr_scheduler_type": "training.lr_scheduler_type",
    "warmup_ratio": "training.warmup_ratio",
    "warmup_steps": "training.warmup_steps",
    "max_grad_norm": "training.max_grad_norm",
    "logging_steps": "training.logging_steps",
    "save_steps": "training.save_steps",
    "save_total_limit": "training.save_total_limit",
    "eval_steps": "training.eval_steps",
    "seed": "training.seed",
    "bf16": "training.precision: bf16",
    "fp16": "training.precision: fp16",
    "gradient_checkpointing": "training.gradient_checkpointing",
    "torch_compile": "training.torch_compile",
    "plot_loss": "training.plot_loss",
    "dataloader_num_workers": "training.dataloader_num_workers",
}


def migration_hint(key: str) -> str:
    """`` It is LLaMA-Factory's key: write it as data.cutoff_len.`` or an empty string."""
    target = LLAMAFACTORY_KEYS.get(key)
    return f" `{key}` is a LLaMA-Factory key: in ft-core write it as {target}." if target else ""
