"""Fine-tune checks for model family plugins: a few real training steps on a tiny random-init model of an
architecture, through the whole runner, with the family plugin loaded.

::

    from ft_core.testing.families import check_family_finetunes
    import ft_core_gemma

    def test_gemma2_finetunes(tmp_path):
        check_family_finetunes(ft_core_gemma, "gemma", model_type="gemma2", template="gemma", tmp_path=tmp_path)
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_tokenizer

__all__ = ["check_family_finetunes", "tiny_config"]

#: Sizes that make any decoder a few-thousand-parameter model; a key is applied where the architecture has it.
TINY_SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "max_position_embeddings": 256,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "first_k_dense_replace": 1,
    "n_group": 1,
    "topk_group": 1,
    "kv_lora_rank": 16,
    "q_lora_rank": 16,
    "qk_rope_head_dim": 4,  # DeepSeek V2/V3 (multi-head latent attention) also need head_dim = 4: pass it
    "qk_nope_head_dim": 4,
    "v_head_dim": 8,
    "sliding_window": 64,
    "ffn_hidden_size": 64,
    "multi_query_group_num": 2,
    "num_layers": 2,
    "tie_word_embeddings": False,
}


def tiny_config(model_type: str, vocab_size: int, **overrides: Any) -> Any:
    """A ``PretrainedConfig`` of ``model_type`` shrunk to :data:`TINY_SIZES` (keys the architecture has) and
    ``vocab_size``, updated by ``overrides``."""
    from transformers import AutoConfig

    default = AutoConfig.for_model(model_type)
    known = set(default.to_dict()) | set(inspect.signature(type(default).__init__).parameters)
    known |= set(getattr(default, "attribute_map", {}))
    settings = {key: value for key, value in TINY_SIZES.items() if key in known}
    if "layer_types" in known:
        settings["layer_types"] = None  # recomputed for the tiny layer count
    settings.update(vocab_size=vocab_size, **overrides)
    return AutoConfig.for_model(model_type, **settings)


def _tokenizer(template: Any) -> Any:
    specials = [*DEFAULT_SPECIAL_TOKENS]
    bos, eos = "<s>", "<|im_end|>"
    if template is not None:
        specials += [t for t in (*template.special_tokens.values(), *template.stop_words) if t]
        bos = template.special_tokens.get("bos_token") or bos
        eos = template.special_tokens.get("eos_token") or eos
    return tiny_tokenizer(special_tokens=specials, chat_template=None, bos_token=bos, eos_token=eos)


def _save_model(path: Path, model_type: str, tokenizer: Any, overrides: Mapping[str, Any]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    config = tiny_config(
        model_type,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def check_family_finetunes(
    module: ModuleType,
    family: str,
    *,
    model_type: str,
    tmp_path: Path,
    template: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    run_overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Fine-tune a tiny random-init ``model_type`` model for 3 LoRA SFT steps (``targets: all``) with the plugin
    ``module`` loaded and return the run manifest.

    Asserts that the run detected model family ``family``, that every logged loss is finite and that the adapter
    was saved. ``template`` is the chat template to train with (default ``chatml``); the tiny tokenizer holds its
    special tokens. ``config_overrides`` adjust the architecture's config; ``run_overrides`` are ``key=value``
    overrides of the run config.
    """
    import yaml

    from ft_core.bootstrap import load_plugins
    from ft_core.testing import run_config

    registered = load_plugins(strict=True, entry_points=False, extra=[(module, "plugin-under-test")])
    chat_template = registered.get("chat_template", template) if template else None
    model_dir = tmp_path / f"tiny-{model_type}"
    _save_model(model_dir, model_type, _tokenizer(chat_template), dict(config_overrides or {}))
    config = {
        "model": {"name_or_path": str(model_dir)},
        "template": {"name": template or "chatml", "check": "off"},
        "data": {
            "dataset": ["identity"],
            "cutoff_len": 64,
            "max_samples": 12,
            "cache_dir": str(tmp_path / "cache"),
        },
        "adapter": {"method": "lora", "rank": 4, "alpha": 8, "targets": "all"},
        "training": {
            "output_dir": str(tmp_path / f"run-{model_type}"),
            "max_steps": 3,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 100,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp_path / f"{model_type}.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = run_config(path, module, overrides=run_overrides)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    detected = manifest.get("model_family", {}).get("name")
    assert detected == family, (
        f"{model_type}: the run detected model family {detected!r}, expected {family!r}"
    )
    assert manifest.get("status") == "completed", f"{model_type}: run ended {manifest.get('status')!r}"
    losses = [json.loads(line).get("loss") for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [loss for loss in losses if loss is not None]
    assert losses and all(math.isfinite(loss) for loss in losses), f"{model_type}: losses {losses}"
    assert any(run_dir.rglob("adapter_model.safetensors")), f"{model_type}: no adapter saved in {run_dir}"
    return manifest
