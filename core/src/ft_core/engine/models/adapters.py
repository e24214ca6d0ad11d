"""``model.adapters``: existing PEFT adapters under the model (LLaMA-Factory's ``adapter_name_or_path``).

With a LoRA-like adapter method the last adapter trains on (its weights load into the new adapter, whose rank, alpha
and targets must match it) and the others are merged into the base first; with ``model.create_new_adapter`` (or a
whole-model method: full, freeze) every adapter is merged into the base and the run trains from there. The merged
ones are recorded in the manifest (``base_adapters``) so chat, serve and export rebuild the same base.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.errors import FtCoreError

ADAPTER_CONFIG = "adapter_config.json"


def adapter_folder(reference: str) -> Path:
    """The PEFT adapter folder of ``reference``: the folder itself, or a finished run's model folder."""
    folder = Path(reference).expanduser()
    if (folder / ADAPTER_CONFIG).is_file():
        return folder.resolve()
    if (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        artefact = folder / manifest.get("artefact", "model")
        if (artefact / ADAPTER_CONFIG).is_file():
            return artefact.resolve()
        raise FtCoreError(
            f"{reference}: the run's model folder holds no adapter ({ADAPTER_CONFIG}): a whole model"
        )
    if not folder.exists():
        raise FtCoreError(f"{reference}: no such adapter folder (relative paths start from {Path.cwd()})")
    raise FtCoreError(
        f"{reference}: not a PEFT adapter folder (no {ADAPTER_CONFIG}) nor an ft-core run folder"
    )


@dataclass(frozen=True)
class AdapterPlan:
    """Which adapters merge into the base and which one (if any) the run's adapter trains on from."""

    merged: tuple[Path, ...]
    resumed: Path | None


def adapter_plan(config: RunConfig) -> AdapterPlan:
    """How ``model.adapters`` enter this run (see the module docstring)."""
    folders = [adapter_folder(reference) for reference in config.model.adapters]
    adapter = config.one("adapter")
    continues = (
        folders
        and not config.model.create_new_adapter
        and adapter is not None
        and not getattr(adapter.component, "saves_full_model", False)
    )
    if continues:
        return AdapterPlan(tuple(folders[:-1]), folders[-1])
    return AdapterPlan(tuple(folders), None)


def adapter_problems(config: RunConfig) -> list[str]:
    """model.adapters name adapter folders; the one trained on matches the adapter's rank and alpha; a quantized
    base takes no merged adapter."""
    if not config.model.adapters:
        return []
    try:
        plan = adapter_plan(config)
    except FtCoreError as exc:
        return [f"model.adapters: {exc}"]
    problems = []
    if plan.merged and config.one("quantization") is not None:
        problems.append(
            "model.adapters: adapters cannot be merged into a quantized base; give one adapter to train on "
            "(without model.create_new_adapter), or drop the quantization section"
        )
    options = config.adapter.options
    if plan.resumed is not None and options is not None:
        saved = json.loads((plan.resumed / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        for key, option in (("r", "rank"), ("lora_alpha", "alpha"), ("use_dora", "use_dora")):
            have, want = getattr(options, option, None), saved.get(key)
            if have is not None and want is not None and float(have) != float(want):
                problems.append(
                    f"adapter.{option}: {have}, but the adapter trained on ({plan.resumed}) has {key} {want}; set "
                    f"adapter.{option}: {want}, or model.create_new_adapter: true to merge it and train a new one"
                )
    return problems


def merge_adapters(model: Any, folders: Sequence[Path | str]) -> Any:
    """``model`` with each adapter of ``folders`` loaded and merged in, in order."""
    if not folders:
        return model
    from peft import PeftModel

    for folder in folders:
        try:
            model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise FtCoreError(f"model.adapters: cannot merge the adapter {folder}: {exc}") from exc
    return model


def load_adapter_weights(peft_model: Any, folder: Path) -> None:
    """Load the trained weights of the adapter in ``folder`` into ``peft_model``'s (new, same-shaped) adapter; a
    weight the new adapter lacks or has in another shape is an error naming it."""
    from peft import set_peft_model_state_dict

    path = folder / "adapter_model.safetensors"
    if path.is_file():
        from safetensors.torch import load_file

        weights = load_file(str(path))
    else:
        import torch

        weights = torch.load(str(folder / "adapter_model.bin"), map_location="cpu", weights_only=True)
    try:
        result = set_peft_model_state_dict(peft_model, weights)
    except RuntimeError as exc:  # a shape mismatch
        raise FtCoreError(f"model.adapters: {folder} does not fit adapter's settings: {exc}") from exc
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise FtCoreError(
            f"model.adapters: {len(unexpected)} weight(s) of {folder} have no place in the new adapter (e.g. "
            f"{unexpected[0]}): its target modules differ; set adapter.targets to the adapter's target_modules, or "
            "model.create_new_adapter: true"
        )
