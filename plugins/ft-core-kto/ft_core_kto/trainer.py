"""TRL's ``KTOTrainer`` fed with ft-core's pre-tokenized rows.

Heavy (imports TRL, torch): imported only when a kto run builds its trainer.

Two differences from ``trl.KTOTrainer``, both small:

* TRL 1.x tokenizes its datasets itself (``_prepare_dataset`` expects ``prompt`` / ``completion`` text or messages).
  ft-core's rows are already ``prompt_ids`` / ``completion_ids`` / ``label``, rendered by the run's chat template,
  which is what TRL's tokenizer step produces; for such datasets only TRL's later steps run: the KL completions (each
  row's prompt with its batch neighbour's answer) and the desirable / undesirable balance check.
* Given a PEFT model and no reference model, TRL adds a frozen copy of the adapter (``"ref"``) as the reference.
  When the adapter is still an identity (LoRA's B matrices are zero, as after ft-core's ``lora`` adapter method), the
  model with adapters disabled *is* the initial policy, so the copy is dropped: the reference is the base model with
  the adapter disabled (LLaMA-Factory's behaviour), and no adapter copy is saved into checkpoints.
"""

from __future__ import annotations

import logging
from typing import Any

from accelerate.utils import is_peft_model
from trl import KTOTrainer

logger = logging.getLogger(__name__)

#: The columns of a pre-tokenized unpaired-preference dataset.
TOKENIZED_COLUMNS = ("prompt_ids", "completion_ids", "label")
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


def label_counts(dataset: Any) -> tuple[int, int]:
    """``(desirable, undesirable)`` rows of a pre-tokenized dataset."""
    labels = list(dataset["label"])
    desirable = sum(bool(label) for label in labels)
    return desirable, len(labels) - desirable


def _columns(dataset: Any) -> set[str]:
    names = getattr(dataset, "column_names", None)
    if names is None:  # an IterableDataset whose features are not resolved yet
        names = list(next(iter(dataset)).keys())
    return set(names)


def add_kl_completions(dataset: Any, batch_size: int) -> Any:
    """TRL's KL completions: within each run of ``batch_size`` consecutive rows, row ``i`` gets the answer of row
    ``i - 1`` (the first gets the last's), so every batch's mismatched answers are the batch's own answers."""

    def rotate(examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        completions = examples["completion_ids"]
        examples["KL_completion_ids"] = [completions[-1], *completions[:-1]]
        return examples

    return dataset.map(rotate, batched=True, batch_size=batch_size)


class FtKtoTrainer(KTOTrainer):
    """``trl.KTOTrainer`` that accepts pre-tokenized rows and uses the adapter-disabled model as reference."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model: Any = self.model
        if (
            self.ref_model is None
            and is_peft_model(model)
            and REFERENCE_ADAPTER in model.peft_config
            and adapter_is_identity(model)
        ):
            model.delete_adapter(REFERENCE_ADAPTER)

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        columns = _columns(dataset)
        if not set(TOKENIZED_COLUMNS) <= columns:
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if self.calculate_KL and "KL_completion_ids" not in columns:
            dataset = add_kl_completions(dataset, args.per_device_train_batch_size)
        if dataset_name == "train" and hasattr(dataset, "__len__"):
            desirable, undesirable = label_counts(dataset)
            self._warn_about_weights(max(desirable, 1), max(undesirable, 1))
        return dataset

    def _warn_about_weights(self, desirable: int, undesirable: int) -> None:
        """TRL's advice (KTO paper, eq. 8) when the weights do not balance unequal numbers of desirable and
        undesirable rows: ``desirable_weight * desirable`` should be in [1, 4/3] x ``undesirable_weight *
        undesirable``."""
        if desirable == undesirable:
            return
        ratio = undesirable * self.undesirable_weight / desirable
        low, high = round(ratio, 2), round(ratio * 1.33, 2)
        other = desirable * self.desirable_weight / undesirable
        other_low, other_high = round(other / 1.33, 2), round(other, 2)
        if not (low <= self.desirable_weight <= high or other_low <= self.undesirable_weight <= other_high):
            logger.warning(
                "kto: %d desirable and %d undesirable rows, and the weights do not balance them; KTO's paper "
                "suggests stage.desirable_weight in [%s, %s] or stage.undesirable_weight in [%s, %s] (not both)",
                desirable,
                undesirable,
                low,
                high,
                other_low,
                other_high,
            )
