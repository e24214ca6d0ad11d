"""Rules of the ``data`` keys that came with LLaMA-Factory's data arguments: dataset mixing, streaming, the
prepared-data folder, per-dataset evaluation, the media folder, the tool format and the image pixel range."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ft_core.api.config import DataSection, RunConfig

#: LLaMA-Factory's tool formats (``data_args.tool_format``) and the ft-core chat templates that render each one;
#: ft-core templates render tools in their own Jinja, so the format follows the template.
TOOL_FORMATS: dict[str, tuple[str, ...]] = {
    "qwen": ("qwen", "qwen2.5", "qwen3"),
    "llama3": ("llama3.1", "llama3.2"),
    "mistral": ("mistral_v3", "mistral_tekken", "mistral_nemo"),
    "glm4": ("glm4",),
    "default": (),
    "glm4_moe": (),
    "minimax1": (),
    "minimax2": (),
    "seed_oss": (),
    "ling": (),
}

#: Streaming: the rows ``ft-core validate`` reads of each dataset (the stream itself is never read whole).
STREAM_CHECK_ROWS = 1000


def _mixing(data: DataSection) -> list[str]:
    probs = data.interleave_probs
    if probs is None:
        return []
    if data.mix_strategy == "concat":
        return [
            "data.interleave_probs: only used when interleaving; set data.mix_strategy: interleave_under or "
            "interleave_over, or remove interleave_probs"
        ]
    problems = []
    if len(probs) != len(data.dataset):
        problems.append(
            f"data.interleave_probs: {len(probs)} probabilities for {len(data.dataset)} datasets in data.dataset; "
            "give one per dataset, in the same order"
        )
    if any(p < 0 for p in probs):
        problems.append(f"data.interleave_probs: probabilities must be >= 0, got {probs}")
    elif not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
        problems.append(f"data.interleave_probs: must add up to 1, got {probs} (sum {sum(probs):g})")
    return problems


def _streaming(config: RunConfig, stage: Any) -> list[str]:
    data, training = config.data, config.training
    problems = []
    if data.buffer_size < 1:
        problems.append(f"data.buffer_size: must be >= 1, got {data.buffer_size}")
    if not data.streaming:
        return problems
    why = "data.streaming: "
    if training.max_steps <= 0:
        problems.append(
            why + "a stream has no length, so the run needs training.max_steps > 0 (epochs cannot be counted)"
        )
    if data.packing is True:
        problems.append(
            why
            + "packing batches rows by their lengths, which needs all rows up front; set data.packing: false "
            "(or auto) or stream off"
        )
    if data.val_size > 0:
        problems.append(
            why + "val_size splits a known set of rows; name evaluation sets in data.eval_dataset"
        )
    if data.tokenized_path is not None:
        problems.append(
            why
            + "tokenized_path saves prepared data, and a stream is prepared as it is read; remove one of them"
        )
    if stage is not None and not getattr(stage.component, "supports_packing", False):
        problems.append(
            why
            + f"the {stage.name} stage prepares its data as a whole; streaming works with stages whose rows are "
            "plain causal-LM rows (sft, pt)"
        )
    return problems


def _tokenized_path(data: DataSection) -> list[str]:
    if data.tokenized_path is None:
        return []
    folder = Path(data.tokenized_path).expanduser()
    if folder.exists() and not folder.is_dir():
        return [f"data.tokenized_path: {folder} is a file; give a folder (it is created on the first run)"]
    if folder.is_dir() and not data.overwrite_cache and not any(folder.iterdir()):
        return [
            f"data.tokenized_path: {folder} exists but is empty, so there is no prepared data to reuse; remove it "
            "(it is created and filled on the first run)"
        ]
    return []


def _evaluation(data: DataSection, stage: Any) -> list[str]:
    if not data.eval_on_each_dataset:
        return []
    if not data.eval_dataset:
        return [
            "data.eval_on_each_dataset: evaluates each of data.eval_dataset on its own; name the evaluation "
            "datasets there (a val_size split is one set)"
        ]
    if stage is not None and stage.component.data_kind == "prompt":
        return [f"data.eval_on_each_dataset: the {stage.name} stage evaluates on one set; set it to false"]
    return []


def _media(data: DataSection) -> list[str]:
    problems = []
    if data.media_dir is not None and not Path(data.media_dir).expanduser().is_dir():
        problems.append(
            f"data.media_dir: no such folder: {data.media_dir} (relative paths start from {Path.cwd()}); it is "
            "where image paths in rows are resolved"
        )
    if data.image_min_pixels < 1 or data.image_max_pixels < 1:
        problems.append("data.image_max_pixels and data.image_min_pixels: must be >= 1")
    elif data.image_min_pixels > data.image_max_pixels:
        problems.append(
            f"data.image_min_pixels ({data.image_min_pixels}) is above data.image_max_pixels "
            f"({data.image_max_pixels})"
        )
    return problems


def tool_format_problem(tool_format: str | None, template: str) -> str | None:
    """Why ``data.tool_format`` does not fit chat template ``template`` (``None`` when it does)."""
    if tool_format is None:
        return None
    if tool_format not in TOOL_FORMATS:
        return (
            f"data.tool_format: unknown tool format {tool_format!r}; LLaMA-Factory's are "
            f"{', '.join(TOOL_FORMATS)}"
        )
    renders = TOOL_FORMATS[tool_format]
    if template in renders:
        return None
    where = (
        f"templates {', '.join(renders)} render it: choose one of them in template.name"
        if renders
        else "no ft-core template renders it"
    )
    return (
        f"data.tool_format: {tool_format!r} is not the tool format of chat template {template!r} (ft-core renders "
        f"tools with the template's own Jinja, so a format cannot be swapped in); {where}, or remove tool_format"
    )


def data_options(config: RunConfig) -> list[str]:
    """data.mix_strategy / interleave_probs, streaming, tokenized_path, eval_on_each_dataset, media_dir, the image
    pixel range and (for a named template) tool_format are consistent."""
    data, stage = config.data, config.one("stage")
    problems = _mixing(data) + _streaming(config, stage) + _tokenized_path(data) + _evaluation(data, stage)
    problems += _media(data)
    if data.tool_format is not None and (
        config.template.name != "auto" or data.tool_format not in TOOL_FORMATS
    ):
        problem = tool_format_problem(data.tool_format, config.template.name)
        problems += [problem] if problem else []
    return problems
