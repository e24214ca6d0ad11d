"""Helpers for adapter and patch plugins: which parameters train, module lookup, trainable-parameter reports.

torch and transformers are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from ft_core.api.components import AdapterMethod, ModelFamily, OptionsT
from ft_core.api.context import ProcessInfo
from ft_core.api.errors import FtCoreError

#: Names of output heads that ``targets: all`` never includes (besides ``get_output_embeddings()``).
OUTPUT_HEAD_NAMES = frozenset({"lm_head", "output_layer", "score"})


#: Parameter-name patterns that never get weight decay (biases and norm weights), as ``transformers.Trainer`` has it.
NO_DECAY_PATTERNS = (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")


def decaying_parameter_names(model: Any) -> set[str]:
    """Names of the parameters weight decay applies to: all but biases, norm weights and ``nn.LayerNorm``s."""
    from torch import nn
    from transformers.trainer_pt_utils import get_parameter_names

    return set(get_parameter_names(model, [nn.LayerNorm], list(NO_DECAY_PATTERNS)))


def default_param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """The optimizer's default groups over the trainable parameters: ``weight_decay`` on the decaying ones, none on
    biases and norms (what the engine hands an optimizer factory)."""
    decay = decaying_parameter_names(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]


def upcast_trainable_parameters(model: Any) -> int:
    """Cast every trainable fp16/bf16 parameter to fp32 (stable optimizer updates); returns how many."""
    import torch

    count = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype in (torch.float16, torch.bfloat16):
            parameter.data = parameter.data.float()
            count += 1
    return count


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (tied parameters counted once)."""
    trainable = total = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total


def report_trainable(model: Any, method: str) -> str:
    """Return ``"<method>: trainable params: N || all params: M || trainable%: P"``, printed on the main process."""
    trainable, total = count_parameters(model)
    line = (
        f"{method}: trainable params: {trainable:,d} || all params: {total:,d} || "
        f"trainable%: {100 * trainable / max(total, 1):.4f}"
    )
    if ProcessInfo.current().is_main_process:
        print(line, file=sys.stderr)
    return line


def name_matches(name: str, wanted: str) -> bool:
    """True when the dotted ``wanted`` path occurs as whole components in the dotted ``name``."""
    return f".{wanted}." in f".{name}."


def decoder_layers(model: Any, family: ModelFamily | None) -> Any:
    """The decoder-layer ``ModuleList``: ``family.decoder_layers`` when it resolves, else the longest ModuleList."""
    from torch import nn

    if family is not None:
        found = model
        try:
            for attribute in family.decoder_layers.split("."):
                found = getattr(found, attribute)
        except AttributeError:
            found = None
        if isinstance(found, nn.ModuleList):
            return found
    candidates = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not candidates:
        raise FtCoreError(f"{type(model).__name__} has no list of decoder layers (no nn.ModuleList found)")
    return max(candidates, key=len)


class WholeModelAdapter(AdapterMethod[OptionsT]):
    """Base of adapter methods whose artefact is the whole model (full, freeze): saved and reloaded as is."""

    saves_full_model: ClassVar[bool] = True

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        """Load the saved causal LM in its saved dtype; the base model is not needed."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(artefact_dir, dtype="auto").eval()


def linear_module_names(model: Any, family: ModelFamily | None) -> list[str]:
    """Short names of the ``nn.Linear`` leaves (``q_proj``, ``up_proj``, ...) except the output head.

    This is what LoRA ``targets: all`` expands to; ``family.lora_targets`` wins when the family sets it. For a
    vision-language family, layers of the vision tower and projector (:func:`vision_module_prefixes`) don't count.
    """
    if family is not None and family.lora_targets:
        return list(family.lora_targets)
    from torch import nn

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    outside = vision_module_prefixes(family)
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module is not head
        and not any(name == p or name.startswith(p + ".") for p in outside)
    }
    return sorted(names - OUTPUT_HEAD_NAMES)


def vision_module_prefixes(family: ModelFamily | None) -> tuple[str, ...]:
    """Module paths of a vision-language family's vision tower and multi-modal projector (``()`` otherwise)."""
    if family is None or family.vision is None:
        return ()
    return (*family.vision.vision_modules, *family.vision.projector_modules)


def adapter_target_modules(targets: list[str], family: ModelFamily | None) -> list[str] | str:
    """PEFT ``target_modules`` for module names ``targets``: the names themselves, or for a vision-language family a
    regular expression matching them only outside the vision tower and projector (their layers share names such as
    ``q_proj`` / ``fc1`` with the language model's)."""
    import re

    outside = vision_module_prefixes(family)
    if not outside:
        return list(targets)
    excluded = "|".join(re.escape(p) for p in outside)
    wanted = "|".join(re.escape(t) for t in targets)
    return rf"^(?!(?:{excluded})(?:\.|$)).*(?:^|\.)(?:{wanted})$"
