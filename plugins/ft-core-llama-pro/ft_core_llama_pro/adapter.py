"""The ``llama_pro`` adapter method: expand the model with new blocks and train only them (in full or with LoRA);
the artefact is the whole expanded model (LoRA merged into the new blocks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ft_core.api import (
    LoraSettings,
    ModelFamily,
    OptionsError,
    WholeModelAdapter,
    classification_head,
    decoder_layers,
    lora_target_names,
    peft_task_type,
    report_trainable,
    upcast_trainable_parameters,
)
from ft_core_llama_pro.expand import expand_blocks, expansion_positions, layers_attribute


@dataclass
class LlamaProOptions(LoraSettings):
    """Options of ``adapter.method: llama_pro``; the LoRA keys (:class:`~ft_core.api.LoraSettings`) apply with
    ``use_lora: true``."""

    #: New blocks, spread evenly: one after the last block of each of ``num_expand`` equal groups of layers.
    num_expand: int | None = None
    #: Or: the (0-based) original blocks each followed by a copy of itself.
    expand_layers: list[int] = field(default_factory=list)
    #: Train the new blocks through LoRA (``rank``, ``alpha``, ``targets`` ... as for ``adapter.method: lora``)
    #: instead of in full; the saved model has the LoRA update merged in.
    use_lora: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.num_expand is None) == (not self.expand_layers):
            raise OptionsError(
                "set exactly one of num_expand (new blocks spread evenly, e.g. 8 for 32 layers) and expand_layers "
                "(the blocks to copy, e.g. [3, 7])"
            )
        if self.num_expand is not None and self.num_expand < 1:
            raise OptionsError(f"num_expand must be >= 1, got {self.num_expand}")
        if self.modules_to_save and not self.use_lora:
            raise OptionsError(
                "modules_to_save applies with use_lora: true; without LoRA only the new blocks train"
            )


class LlamaProAdapter(WholeModelAdapter[LlamaProOptions]):
    """LLaMA Pro: identity-initialised new decoder blocks, the only part that trains; saves the whole model."""

    options_schema: ClassVar[type] = LlamaProOptions
    description: ClassVar[str] = (
        "LLaMA Pro block expansion: identity-initialised new decoder blocks train (in full or with LoRA), the rest "
        "stays frozen; saves the whole expanded model"
    )

    def apply(self, model: Any, options: LlamaProOptions, family: ModelFamily | None) -> Any:
        count = len(decoder_layers(model, family))
        positions = expansion_positions(count, options.num_expand, list(options.expand_layers))
        new_blocks = expand_blocks(model, family, positions)
        model.requires_grad_(False)
        if options.use_lora:
            model = self._with_lora(model, options, family, new_blocks)
        else:
            layers = decoder_layers(model, family)
            for index in new_blocks:
                layers[index].requires_grad_(True)
        head = classification_head(model)
        if head is not None:  # a reward or value model's score layer is new: it always trains
            head.requires_grad_(True)
        upcast_trainable_parameters(model)
        report_trainable(model, f"llama_pro ({len(new_blocks)} new blocks at {new_blocks}, {count} before)")
        return model

    @staticmethod
    def _with_lora(
        model: Any, options: LlamaProOptions, family: ModelFamily | None, blocks: list[int]
    ) -> Any:
        from peft import LoraConfig, get_peft_model

        modules_to_save: list[str] | None = list(options.modules_to_save) or None
        config = LoraConfig(
            task_type=peft_task_type(model),
            r=options.rank,
            lora_alpha=options.alpha,  # type: ignore[arg-type]  # PEFT annotates int; it scales by any number
            lora_dropout=options.dropout,
            target_modules=lora_target_names(model, options, family),
            layers_to_transform=blocks,
            layers_pattern=layers_attribute(model, family),
            modules_to_save=modules_to_save,
            bias=options.bias,
            use_rslora=options.use_rslora,
        )
        return get_peft_model(model, config)

    def save(self, model: Any, output_dir: str) -> None:
        """The whole expanded model (``config.json`` with the new ``num_hidden_layers``); with LoRA, the adapter
        is merged into the new blocks first (in place: this is the run's last use of the model)."""
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(output_dir)
