"""The LoRA adapter method: trains low-rank updates of chosen linear layers and saves only the adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ft_core.api import (
    AdapterMethod,
    FtCoreError,
    ModelFamily,
    OptionsError,
    adapter_target_modules,
    linear_module_names,
    name_matches,
    report_trainable,
    upcast_trainable_parameters,
)


@dataclass
class LoraOptions:
    """Options of ``adapter.method: lora``."""

    #: Rank of the low-rank update matrices.
    rank: int = 8
    #: Scaling numerator: the update is scaled by ``alpha / rank`` (``alpha / sqrt(rank)`` with rsLoRA).
    alpha: float = 16.0
    #: Dropout on the LoRA input.
    dropout: float = 0.0
    #: Module names to adapt: ``all`` (every linear layer except the output head), a list, or ``"q_proj,v_proj"``.
    targets: list[str] | str = "all"
    #: Modules trained in full and saved with the adapter (e.g. ``embed_tokens``, ``lm_head``).
    modules_to_save: list[str] = field(default_factory=list)
    #: Which biases train: ``none``, ``all`` or ``lora_only``.
    bias: Literal["none", "all", "lora_only"] = "none"
    #: Rank-stabilised scaling ``alpha / sqrt(rank)``.
    use_rslora: bool = False
    #: Weight-decomposed LoRA (DoRA).
    use_dora: bool = False
    #: Initialisation of the A matrices: ``default`` (Kaiming uniform) or ``gaussian``; B starts at zero.
    init: Literal["default", "gaussian"] = "default"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise OptionsError(f"rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise OptionsError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.targets, str) and self.targets != "all":
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        if not self.targets:
            raise OptionsError("targets must be 'all' or a non-empty list of module names")


class LoraAdapter(AdapterMethod[LoraOptions]):
    """LoRA through PEFT: only the low-rank matrices (and ``modules_to_save``) train."""

    options_schema: ClassVar[type] = LoraOptions
    description: ClassVar[str] = "LoRA / rsLoRA / DoRA low-rank adapters (PEFT); saves the adapter only"
    saves_full_model: ClassVar[bool] = False

    def apply(self, model: Any, options: LoraOptions, family: ModelFamily | None) -> Any:
        from peft import LoraConfig, get_peft_model

        available = linear_module_names(model, None)
        targets = linear_module_names(model, family) if options.targets == "all" else list(options.targets)
        module_names = [name for name, _ in model.named_modules()]
        for key, wanted in (("targets", targets), ("modules_to_save", options.modules_to_save)):
            missing = [w for w in wanted if not any(name_matches(n, w) for n in module_names)]
            if missing:
                raise FtCoreError(
                    f"adapter.{key}: {', '.join(repr(m) for m in missing)} not found in {type(model).__name__}. "
                    f"Linear modules available: {', '.join(available)} (or use targets: all)"
                )
        config = LoraConfig(
            task_type="CAUSAL_LM",
            r=options.rank,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=adapter_target_modules(targets, family),
            modules_to_save=options.modules_to_save or None,
            bias=options.bias,
            use_rslora=options.use_rslora,
            use_dora=options.use_dora,
            init_lora_weights=True if options.init == "default" else "gaussian",
        )
        peft_model = get_peft_model(model, config)
        from ft_core_lora.lean import make_lean

        make_lean(peft_model)
        upcast_trainable_parameters(peft_model)
        report_trainable(peft_model, "lora")
        return peft_model

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base(), artefact_dir)
        return model.merge_and_unload().eval()
