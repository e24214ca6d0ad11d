"""Load a run's trained model (adapter merged into its base), check it is a plain model, and write it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from ft_core.api import HEADS_FILE, ChatTarget, FtCoreError

logger = logging.getLogger(__name__)


#: The record an export writes next to the exported model (what was exported, from which run, how).
EXPORT_RECORD = "ft_core_export.json"


def _still_quantized(model: Any) -> bool:
    config = getattr(model, "config", None)
    return bool(
        getattr(model, "is_quantized", False)
        or getattr(model, "hf_quantizer", None) is not None
        or getattr(config, "quantization_config", None)
    )


def _stop_token_ids(tokenizer: Any, stop_words: list[str]) -> list[int]:
    """Token ids of the template's stop words that are single tokens (end-of-turn markers such as <|eot_id|>)."""
    ids = []
    for word in stop_words:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(int(encoded[0]))
    return ids


def _set_end_of_turn(model: Any, tokenizer: Any, stop_words: list[str]) -> None:
    """Make plain ``model.generate`` stop where the run's template ends a turn: EOS plus the template's stop
    tokens as ``generation_config.eos_token_id``."""
    generation = getattr(model, "generation_config", None)
    if generation is None:
        return
    current = generation.eos_token_id
    ids = [current] if isinstance(current, int) else list(current or [])
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    ids += _stop_token_ids(tokenizer, stop_words)
    ids = list(dict.fromkeys(ids))
    if ids:
        generation.eos_token_id = ids[0] if len(ids) == 1 else ids
    if generation.pad_token_id is None and tokenizer.pad_token_id is not None:
        generation.pad_token_id = int(tokenizer.pad_token_id)


def export_run(
    folder: Path,
    manifest: dict[str, Any],
    target: ChatTarget,
    output: Path,
    *,
    dtype: str,
    max_shard_size: str,
    dequantized: str | None,
    gguf: tuple[Path, str] | None,
) -> list[Path]:
    """Write the run's model as a plain Hugging Face folder in ``output``; returns the written model folder (and
    the GGUF file)."""
    import torch
    from transformers import AutoTokenizer

    artefact = folder / str(manifest.get("artefact") or "model")
    if (artefact / HEADS_FILE).is_file():
        raise FtCoreError(
            f"{artefact} holds custom head modules ({HEADS_FILE}) that a plain transformers model cannot load; "
            "export is for causal-LM runs"
        )
    adapter = next(
        (c.get("name") for c in manifest.get("components", []) if c.get("section") == "adapter"), "?"
    )
    base = (manifest.get("base_model") or {}).get("name_or_path", "?")
    logger.info("loading %s (%s on %s) in %s ...", folder, adapter, base, dtype)
    model = target.load_model(getattr(torch, dtype))
    if hasattr(model, "merge_and_unload"):  # an adapter method that returned a PEFT model unmerged
        model = model.merge_and_unload()
    if _still_quantized(model):
        raise FtCoreError(
            f"{folder}: the loaded model is still quantized (its base {base} is a quantized checkpoint), so the "
            "merged weights cannot be written as a plain model; train from an unquantized base to export"
        )
    model = model.to(getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path)
    if not getattr(tokenizer, "chat_template", None):
        logger.warning(
            "%s has no chat template: the exported tokenizer has none either", target.tokenizer_path
        )
    _set_end_of_turn(model, tokenizer, target.stop_words)
    output.mkdir(parents=True, exist_ok=True)
    logger.info("writing %s (safetensors shards of at most %s) ...", output, max_shard_size)
    model.save_pretrained(str(output), max_shard_size=max_shard_size)
    tokenizer.save_pretrained(str(output))
    record = {
        "source_run": str(folder.resolve()),
        "base_model": base,
        "adapter": adapter,
        "dtype": dtype,
        "dequantized_from": dequantized,
        "template": {k: (manifest.get("template") or {}).get(k) for k in ("name", "stop_words", "system")},
        "ft_core_version": manifest.get("ft_core_version"),
    }
    (output / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    written = [output]
    if gguf is not None:
        written.append(convert_to_gguf(output, *gguf))
    return written


def convert_to_gguf(model_dir: Path, converter: Path, outtype: str) -> Path:
    """Run llama.cpp's ``convert_hf_to_gguf.py`` on the exported folder; returns the GGUF file."""
    outfile = model_dir / f"model-{outtype}.gguf"
    command = [
        sys.executable,
        str(converter),
        str(model_dir),
        "--outfile",
        str(outfile),
        "--outtype",
        outtype,
    ]
    logger.info("converting to GGUF (%s) with %s ...", outtype, converter)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise FtCoreError(
            f"llama.cpp's converter failed on {model_dir} (exit {done.returncode}); the merged model is written "
            f"there all the same. Its last lines:\n{tail}"
        )
    return outfile
