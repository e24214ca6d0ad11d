"""TRL's ``DPOTrainer`` fed with ft-core's pre-tokenized rows.

Heavy (imports TRL, torch): imported only when a dpo run builds its trainer.

Two differences from ``trl.DPOTrainer``, both small:

* TRL 1.x always tokenizes its datasets itself (``_prepare_dataset`` expects ``prompt`` / ``chosen`` /
  ``rejected`` text or messages). ft-core's rows are already ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``,
  rendered by the run's chat template, which is exactly what TRL's tokenizer step produces; such datasets are
  passed through unchanged.
* Given a PEFT model and no reference model, TRL adds a frozen copy of the adapter (``"ref"``) to compute the
  reference log-probabilities. When the adapter is still an identity (LoRA's B matrices are zero, as after
  ft-core's ``lora`` adapter method), the model with adapters disabled *is* the initial policy, so the copy is
  dropped: the reference is the base model with the adapter disabled (LLaMA-Factory's behaviour), no adapter
  copy is trained around, saved into checkpoints or written next to the trained adapter.

And one addition: ``loss_type: sigmoid`` with ``label_smoothing`` e > 0 trains conservative DPO (cDPO, Mitchell
2023; LLaMA-Factory's ``dpo_label_smoothing``), ``-(1 - e) log s(b d) - e log s(-b d)``, which TRL 1.x's sigmoid loss
leaves out (it ignores ``label_smoothing``).
"""

from __future__ import annotations

import types
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as torch_functional
from accelerate.utils import is_peft_model
from trl import DPOTrainer
from trl.trainer import dpo_trainer

#: The columns of a pre-tokenized preference dataset (what TRL's tokenizer step and collator use).
TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
#: The adapter copy TRL adds as the reference of a PEFT policy.
REFERENCE_ADAPTER = "ref"


def is_adapter_model(model: Any) -> bool:
    """Whether ``model`` trains through a PEFT adapter (then the reference is the model with it disabled)."""
    return bool(is_peft_model(model))


def adapter_is_identity(model: Any, adapter_name: str = "default") -> bool:
    """True when the LoRA adapter ``adapter_name`` changes nothing yet (every B matrix is zero), so the model
    with adapters disabled computes the same function; False when unsure (another PEFT method, non-zero init)."""
    config = getattr(model, "peft_config", {}).get(adapter_name)
    if config is None or str(getattr(config, "peft_type", "")).rsplit(".", 1)[-1].upper() != "LORA":
        return False
    zero_weights = [
        parameter
        for name, parameter in model.named_parameters()
        if f"lora_B.{adapter_name}." in name or f"lora_embedding_B.{adapter_name}" in name
    ]
    return bool(zero_weights) and all(not parameter.detach().any() for parameter in zero_weights)


def _columns(dataset: Any) -> set[str]:
    names = getattr(dataset, "column_names", None)
    if names is None:  # an IterableDataset whose features are not resolved yet
        names = list(next(iter(dataset)).keys())
    return set(names)


class FtDpoTrainer(DPOTrainer):
    """``trl.DPOTrainer`` that accepts pre-tokenized rows and uses the adapter-disabled model as reference."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model: Any = self.model  # a PeftModel where accelerate's (unannotated) is_peft_model says so
        if (
            self.ref_model is None
            and is_peft_model(model)
            and REFERENCE_ADAPTER in model.peft_config
            and adapter_is_identity(model)
        ):
            model.delete_adapter(REFERENCE_ADAPTER)

    def _compute_loss(self, model: Any, inputs: Any, return_outputs: Any) -> Any:
        smoothing = float(getattr(self, "label_smoothing", 0.0) or 0.0)
        if smoothing == 0 or "sigmoid" not in self.loss_types:
            return super()._compute_loss(model, inputs, return_outputs)
        # TRL's sigmoid loss is -logsigmoid(b d); conservative DPO mixes in the flipped label. TRL computes the loss
        # through its module's `F.logsigmoid`, which sigmoid is the only selected loss type to call
        # (conservative_functional checks that), so that call gets the mixed form.
        with mock.patch.object(dpo_trainer, "F", conservative_functional(smoothing, self.loss_types)):
            return super()._compute_loss(model, inputs, return_outputs)

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if set(TOKENIZED_COLUMNS) <= _columns(dataset):
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)


#: The loss types whose TRL formula calls ``F.logsigmoid`` once, for its sigmoid term only: with them alone in a run
#: the conservative form of ``F.logsigmoid`` changes that term and nothing else.
_CONSERVATIVE_SAFE = frozenset({"sigmoid", "sft"})


def conservative_logsigmoid(x: torch.Tensor, smoothing: float) -> torch.Tensor:
    """``(1 - e) log s(x) + e log s(-x)``: the label-smoothed log-likelihood of conservative DPO (cDPO)."""
    return (1 - smoothing) * torch_functional.logsigmoid(x) + smoothing * torch_functional.logsigmoid(-x)


def conservative_functional(smoothing: float, loss_types: list[str]) -> Any:
    """``torch.nn.functional`` with ``logsigmoid`` replaced by :func:`conservative_logsigmoid`, for TRL's sigmoid
    loss; a ``ValueError`` when another selected loss type would call it too."""
    others = set(loss_types) - _CONSERVATIVE_SAFE
    if others:
        raise ValueError(
            f"conservative DPO (label_smoothing with sigmoid) cannot be combined with {', '.join(sorted(others))}"
        )
    functional = types.SimpleNamespace(**vars(torch_functional))
    functional.logsigmoid = lambda x: conservative_logsigmoid(x, smoothing)
    return functional
