"""Helpers for adapter and patch plugins: which parameters train, module lookup, trainable-parameter reports.

torch and transformers are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api.components import AdapterMethod, ModelHead, OptionsT
from ft_core.api.context import ProcessInfo
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError

logger = logging.getLogger(__name__)

#: Names of output heads that ``targets: all`` never includes (besides ``get_output_embeddings()``).
OUTPUT_HEAD_NAMES = frozenset({"lm_head", "output_layer", "score", "classifier"})


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


#: False while the run keeps trainable weights in the dtype they loaded in (see :func:`trainable_weights_upcast`).
_UPCAST: ContextVar[bool] = ContextVar("ft_core_upcast_trainable", default=True)


@contextmanager
def trainable_weights_upcast(upcast: bool) -> Iterator[None]:
    """Within the block, :func:`upcast_trainable_parameters` casts (``upcast``) or leaves the weights in the dtype
    they loaded in: the engine applies adapters inside it, following the run's ``upcast_trainable`` decision
    (``training.upcast_trainable``; off by default for an optimizer that keeps fp32 copies itself, as BAdam does).
    Since 0.4.0."""
    token = _UPCAST.set(upcast)
    try:
        yield
    finally:
        _UPCAST.reset(token)


def upcast_trainable_parameters(model: Any) -> int:
    """Cast every trainable fp16/bf16 parameter to fp32 (stable optimizer updates); returns how many. Casts nothing
    (returns 0) where the run keeps trainable weights in their loaded dtype (:func:`trainable_weights_upcast`)."""
    import torch

    if not _UPCAST.get():
        return 0
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
    """Return ``"<method>: trainable params: N || all params: M || trainable%: P"``, also logged (info) on the main
    process."""
    trainable, total = count_parameters(model)
    line = (
        f"{method}: trainable params: {trainable:,d} || all params: {total:,d} || "
        f"trainable%: {100 * trainable / max(total, 1):.4f}"
    )
    if ProcessInfo.current().is_main_process:
        logger.info(line)
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
        """Load the saved model with the head it was saved with (:func:`artefact_head`) in its saved dtype; the
        base model is not needed."""
        return (
            auto_model_class(artefact_head(artefact_dir)).from_pretrained(artefact_dir, dtype="auto").eval()
        )


def is_linear_layer(module: Any) -> bool:
    """An ``nn.Linear``, or a quantized linear layer of a library that does not subclass it (HQQ's ``HQQLinear``,
    the GPTQ / AWQ / AQLM layers): a leaf module with integer ``in_features`` and ``out_features``. Since 0.4.0."""
    from torch import nn

    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(getattr(module, "in_features", None), int)
        and isinstance(getattr(module, "out_features", None), int)
        and next(module.children(), None) is None
    )


def linear_module_names(model: Any, family: ModelFamily | None) -> list[str]:
    """Short names of the linear leaves (``q_proj``, ``up_proj``, ...: :func:`is_linear_layer`) except the output
    head.

    This is what LoRA ``targets: all`` expands to; ``family.lora_targets`` wins when the family sets it. For a
    vision-language family, layers of the vision tower and projector (:func:`vision_module_prefixes`) don't count.
    """
    if family is not None and family.lora_targets:
        return list(family.lora_targets)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    outside = vision_module_prefixes(family)
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if is_linear_layer(module)
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


# --------------------------------------------------------------------------- heads
#: The transformers auto class of each :data:`~ft_core.api.components.ModelHead`.
_AUTO_CLASSES: dict[ModelHead, str] = {
    "causal_lm": "AutoModelForCausalLM",
    "sequence_classification": "AutoModelForSequenceClassification",
    "value": "AutoModelForTokenClassification",
}
#: PEFT's ``task_type`` of each head.
_PEFT_TASK_TYPES: dict[ModelHead, str] = {
    "causal_lm": "CAUSAL_LM",
    "sequence_classification": "SEQ_CLS",
    "value": "TOKEN_CLS",
}
#: How transformers class names end (``LlamaForSequenceClassification``) for each head but the causal LM.
_CLASS_SUFFIXES: dict[str, ModelHead] = {
    "ForSequenceClassification": "sequence_classification",
    "ForTokenClassification": "value",
}
#: Names transformers gives the output layer of a classification or value model.
CLASSIFIER_NAMES = ("score", "classifier")
#: The file holding a stage's custom head modules in a checkpoint or an artefact.
HEADS_FILE = "heads.safetensors"


def auto_model_class(head: ModelHead) -> Any:
    """The transformers auto class that loads a model with ``head`` (``AutoModelForCausalLM``,
    ``AutoModelForSequenceClassification`` or ``AutoModelForTokenClassification``). Since 0.3.0."""
    import transformers

    return getattr(transformers, _AUTO_CLASSES[head])


def _head_of_class(name: str) -> ModelHead:
    return next((head for suffix, head in _CLASS_SUFFIXES.items() if name.endswith(suffix)), "causal_lm")


def model_head(model: Any) -> ModelHead:
    """The head of a loaded model (a PEFT model's base model too), from its class: ``sequence_classification``,
    ``value`` (token classification) or ``causal_lm`` for any other model. Since 0.3.0."""
    get_base = getattr(model, "get_base_model", None)
    return _head_of_class(type(get_base() if callable(get_base) else model).__name__)


def peft_task_type(model: Any) -> str:
    """PEFT's ``task_type`` for the head of ``model``: ``CAUSAL_LM``, ``SEQ_CLS`` or ``TOKEN_CLS``. With
    ``SEQ_CLS`` / ``TOKEN_CLS`` PEFT trains the ``score`` / ``classifier`` layer in full and saves it with the
    adapter. Since 0.3.0."""
    return _PEFT_TASK_TYPES[model_head(model)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def artefact_head(folder: str | Path) -> ModelHead:
    """The head a saved artefact was trained with: a PEFT adapter's ``task_type`` (``adapter_config.json``), else
    the class in ``config.json`` (``architectures``); ``causal_lm`` when neither says otherwise. Since 0.3.0."""
    folder = Path(folder)
    adapter = _read_json(folder / "adapter_config.json")
    if adapter:
        task_type = adapter.get("task_type")
        return next((head for head, task in _PEFT_TASK_TYPES.items() if task == task_type), "causal_lm")
    architectures = _read_json(folder / "config.json").get("architectures") or [""]
    return _head_of_class(str(architectures[0]))


def configure_head(model_config: Any, head: ModelHead, pad_token_id: int | None) -> None:
    """Set on a model config what ``head`` needs before the weights load: one label (a scalar score) for a
    ``sequence_classification`` or ``value`` head, and the tokenizer's pad token (a sequence is scored at its last
    token that is not padding). A causal LM's config is left as it is. Since 0.3.0."""
    if head == "causal_lm":
        return
    model_config.num_labels = 1
    if pad_token_id is not None:
        model_config.pad_token_id = pad_token_id


def classification_head(model: Any) -> Any | None:
    """The output layer of a sequence-classification or value model (its ``score`` or ``classifier`` module), which
    an adapter method should train along with what it chooses; ``None`` for a causal LM. Since 0.3.0."""
    if model_head(model) == "causal_lm":
        return None
    return next((getattr(model, n) for n in CLASSIFIER_NAMES if getattr(model, n, None) is not None), None)


def find_heads(model: Any, names: Iterable[str]) -> dict[str, Any]:
    """The modules called ``names`` in ``model`` (also inside an adapter wrapper), by name: a stage's custom heads
    (``ModelRole.head_modules``). Since 0.3.0."""
    found: dict[str, Any] = {}
    for name in names:
        matches = [m for path, m in model.named_modules() if path == name or path.endswith(f".{name}")]
        if not matches:
            raise FtCoreError(
                f"stage head {name!r} is not in {type(model).__name__}: add it in the stage's prepare_model"
            )
        found[name] = matches[0]
    return found


def save_heads(heads: Mapping[str, Any], folder: str | Path) -> None:
    """Write the weights of custom head modules (by name, as :func:`find_heads` gives them) to
    ``folder/heads.safetensors``, with their names. Since 0.3.0."""
    from safetensors.torch import save_file

    tensors = {
        f"{name}.{key}": value.detach().contiguous().cpu()
        for name, head in heads.items()
        for key, value in head.state_dict().items()
    }
    save_file(tensors, str(Path(folder) / HEADS_FILE), metadata={"heads": json.dumps(list(heads))})


def load_heads(model: Any, folder: str | Path, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Load ``folder/heads.safetensors`` (a checkpoint or a run's ``model/`` artefact) into custom head modules and
    return them by name; ``{}`` when the folder has no such file.

    ``model``: the model holding the heads (add them first, as the stage's ``prepare_model`` did; an adapter wrapper
    is fine) with ``names`` the heads to load (default: every head the file holds), or the heads themselves by name
    (:func:`find_heads`), which all load. Since 0.3.0.
    """
    path = Path(folder) / HEADS_FILE
    if not path.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        tensors = {key: handle.get_tensor(key) for key in keys}
        recorded = (handle.metadata() or {}).get("heads")
    if names is None:
        names = json.loads(recorded) if recorded else sorted({key.split(".", 1)[0] for key in keys})
    heads = dict(model) if isinstance(model, Mapping) else find_heads(model, names)
    for name, head in heads.items():
        prefix = f"{name}."
        weights = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        if not weights:
            raise FtCoreError(f"{path} holds no weights of the head {name!r}")
        head.load_state_dict(weights)
    return heads
