"""The LoRA adapter method: trains low-rank updates of chosen linear layers and saves only the adapter.

PEFT's task type follows the model's head (:func:`ft_core.api.peft_task_type`): on a sequence-classification or
value model the ``score`` / ``classifier`` layer trains in full and is saved with the adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ft_core.api import (
    AdapterMethod,
    FtCoreError,
    LoraSettings,
    ModelFamily,
    OptionsError,
    adapter_target_modules,
    artefact_head,
    lora_target_names,
    model_head,
    peft_task_type,
    report_trainable,
    upcast_trainable_parameters,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api import RunConfig


@dataclass
class LoraOptions(LoraSettings):
    """Options of ``adapter.method: lora``: the shared :class:`~ft_core.api.LoraSettings` (rank, alpha, dropout,
    targets, modules_to_save, bias, use_rslora) and LoRA's variants."""

    #: Weight-decomposed LoRA (DoRA).
    use_dora: bool = False
    #: Initialisation: ``default`` (A Kaiming uniform, B zero), ``gaussian`` (A Gaussian, B zero), ``pissa``
    #: (A and B from the principal singular vectors of each weight; the base keeps the residual) or ``loftq`` (the
    #: base is quantized and A, B start at the best low-rank fit of the quantization error).
    init: Literal["default", "gaussian", "pissa", "loftq"] = "default"
    #: ``init: pissa``: iterations of the fast randomised SVD (``pissa_niter_N``); ``0`` = exact SVD.
    pissa_iter: int = 16
    #: ``init: loftq``: bits of the quantized base (NF4 for 4, int8 for 8, through bitsandbytes).
    loftq_bits: Literal[4, 8] = 4
    #: LoRA+: the B matrices train in their own parameter group at ``learning_rate x lora_plus_ratio``; ``null``
    #: = off (LoRA+ suggests 16).
    lora_plus_ratio: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pissa_iter < 0:
            raise OptionsError(f"pissa_iter must be >= 0 (0 = exact SVD), got {self.pissa_iter}")
        if self.loftq_bits not in (4, 8):
            raise OptionsError(f"loftq_bits must be 4 or 8, got {self.loftq_bits}")
        if self.lora_plus_ratio is not None and self.lora_plus_ratio <= 0:
            raise OptionsError(f"lora_plus_ratio must be > 0 (or null), got {self.lora_plus_ratio}")
        if self.init in ("pissa", "loftq") and self.use_dora:
            raise OptionsError(
                f"init: {self.init} does not combine with use_dora; use init: default with DoRA"
            )

    @property
    def peft_init(self) -> bool | str:
        """PEFT's ``init_lora_weights`` for these options (LoftQ starts as ``True`` and is fitted afterwards)."""
        if self.init == "gaussian":
            return "gaussian"
        if self.init == "pissa":
            return "pissa" if self.pissa_iter == 0 else f"pissa_niter_{self.pissa_iter}"
        return True


class LoraAdapter(AdapterMethod[LoraOptions]):
    """LoRA through PEFT: only the low-rank matrices (and ``modules_to_save``) train."""

    options_schema: ClassVar[type] = LoraOptions
    description: ClassVar[str] = "LoRA / rsLoRA / DoRA low-rank adapters (PEFT); saves the adapter only"
    saves_full_model: ClassVar[bool] = False

    def validate(self, options: LoraOptions, config: RunConfig) -> list[str]:
        problems: list[str] = []
        quantization = config.one("quantization")
        if options.init in ("pissa", "loftq") and quantization is not None:
            problems.append(
                f"adapter.init: {options.init} rewrites the base weights, which a quantized base "
                f"(quantization.method: {quantization.name}) cannot hold; drop the quantization section "
                + ("(init: loftq quantizes the base itself) " if options.init == "pissa" else "")
                + "or use init: default"
            )
        if options.init == "loftq":
            import importlib.util

            if importlib.util.find_spec("bitsandbytes") is None:
                problems.append(
                    "adapter.init: loftq quantizes the base with bitsandbytes, which is not installed: "
                    "pip install 'ft-core-lora[loftq]' (or use init: pissa / default)"
                )
        return problems

    def apply(self, model: Any, options: LoraOptions, family: ModelFamily | None) -> Any:
        from peft import LoraConfig, get_peft_model

        targets = lora_target_names(model, options, family)
        config = LoraConfig(
            task_type=peft_task_type(model),
            r=options.rank,
            lora_alpha=options.alpha,  # type: ignore[arg-type]  # PEFT annotates int; it scales by any number
            lora_dropout=options.dropout,
            target_modules=adapter_target_modules(targets, family),
            modules_to_save=list(options.modules_to_save) or None,
            bias=options.bias,
            use_rslora=options.use_rslora,
            use_dora=options.use_dora,
            init_lora_weights=options.peft_init,  # type: ignore[arg-type]
        )
        peft_model = get_peft_model(model, config)
        if options.init == "pissa":
            from ft_core_lora.variants import remember_initial_adapter

            remember_initial_adapter(peft_model)
        elif options.init == "loftq":
            from ft_core_lora.variants import loftq_initialise

            loftq_initialise(peft_model, options.loftq_bits)
        from ft_core_lora.lean import make_lean

        make_lean(peft_model)
        upcast_trainable_parameters(peft_model)
        report_trainable(peft_model, "lora")
        return peft_model

    def save(self, model: Any, output_dir: str) -> None:
        """The adapter; a PiSSA adapter is converted to a plain LoRA adapter of the original base (rank doubled)
        and a LoftQ adapter records the base's quantization (``ft_core_loftq.json``), which loading repeats."""
        from ft_core_lora.variants import save_adapter

        save_adapter(model, output_dir)

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        """The base model (``load_base()`` loads it with the head the adapter was trained on, from its PEFT task
        type) with the adapter and its trained head merged in."""
        from peft import PeftModel

        base = load_base()
        head, base_head = artefact_head(artefact_dir), model_head(base)
        if head != base_head:
            raise FtCoreError(
                f"{artefact_dir} holds a LoRA adapter of a model with a {head} head, but the base model loaded for it "
                f"is a {type(base).__name__} ({base_head}); load the base with ft_core.api.auto_model_class({head!r})"
            )
        from ft_core_lora.variants import requantize_for_loftq

        requantize_for_loftq(base, artefact_dir)
        model = PeftModel.from_pretrained(base, artefact_dir)
        return model.merge_and_unload().eval()
