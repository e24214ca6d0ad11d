"""The ``unsloth_lora`` adapter method: LoRA through ``FastLanguageModel.get_peft_model`` (Unsloth's fused LoRA
kernels and its gradient checkpointing) on a model this plugin loaded. The artefact is a plain PEFT adapter."""

from __future__ import annotations

from typing import Any, ClassVar

from ft_core.api import (
    AdapterMethod,
    FtCoreError,
    ModelFamily,
    RunConfig,
    lora_target_names,
    report_trainable,
)
from ft_core_unsloth.loading import ADAPTER, SECTION, SETTINGS_ATTRIBUTE, enabled, import_unsloth
from ft_core_unsloth.options import UnslothLoraOptions


def target_modules(model: Any, options: UnslothLoraOptions, family: ModelFamily | None) -> list[str]:
    """The module names to adapt (:func:`ft_core.api.lora_target_names`: ``all`` is the family's LoRA targets, else
    every linear layer but the head; a name that matches no module is an error listing the linear modules)."""
    return lora_target_names(model, options, family)


def _drop_engine_checkpointing(model: Any) -> None:
    """Turn off the activation checkpointing the engine (or a quantizer) enabled before the adapter step:
    ``get_peft_model`` sets up Unsloth's own, which must not run on top of another."""
    for flag, disable in (
        ("is_activation_checkpointing", "activation_checkpointing_disable"),
        ("is_gradient_checkpointing", "gradient_checkpointing_disable"),
    ):
        try:
            enabled = bool(getattr(model, flag, False))
        except Exception:  # a deprecated property may warn or raise
            enabled = False
        if enabled and callable(getattr(model, disable, None)):
            getattr(model, disable)()
            return


class UnslothLoraAdapter(AdapterMethod[UnslothLoraOptions]):
    """LoRA built by Unsloth; needs ``unsloth.enabled: true`` (the model must come from ``FastLanguageModel``)."""

    options_schema: ClassVar[type] = UnslothLoraOptions
    description: ClassVar[str] = (
        "LoRA through Unsloth's FastLanguageModel.get_peft_model (fused LoRA kernels; needs unsloth.enabled)"
    )
    saves_full_model: ClassVar[bool] = False

    def validate(self, options: UnslothLoraOptions, config: RunConfig) -> list[str]:
        if not enabled(config):
            return [
                f"adapter.method: {ADAPTER} trains a model loaded by Unsloth; set {SECTION}.enabled: true "
                "(or use adapter.method: lora)"
            ]
        return []

    def apply(self, model: Any, options: UnslothLoraOptions, family: ModelFamily | None) -> Any:
        settings = getattr(model, SETTINGS_ATTRIBUTE, None)
        if settings is None:
            raise FtCoreError(
                f"adapter.method: {ADAPTER} got a {type(model).__name__} that Unsloth did not load (is "
                f"{SECTION}.enabled true, and is this the policy model?); use adapter.method: lora for other models"
            )
        unsloth = import_unsloth()
        _drop_engine_checkpointing(model)
        peft_model = unsloth.FastLanguageModel.get_peft_model(
            model,
            r=options.rank,
            target_modules=target_modules(model, options, family),
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            bias=options.bias,
            use_gradient_checkpointing=settings.gradient_checkpointing,
            random_state=settings.random_state,
            max_seq_length=settings.max_seq_length,
            use_rslora=options.use_rslora,
            modules_to_save=list(options.modules_to_save) or None,
            init_lora_weights=True if options.init == "default" else "gaussian",
        )
        report_trainable(peft_model, ADAPTER)
        return peft_model

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base(), artefact_dir)
        return model.merge_and_unload().eval()
