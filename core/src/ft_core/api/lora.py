"""The options every LoRA-style adapter method shares, and the check of their module names.

``LoraSettings`` is the public schema of those options (rank, alpha, dropout, targets, modules to save, bias,
rsLoRA): an adapter method's options dataclass subclasses it and adds its own fields (``ft-core-lora``'s
``LoraOptions`` adds DoRA and the initialisations, ``ft-core-unsloth``'s ``UnslothLoraOptions`` its ``init``), so the
shared keys are declared, documented and validated once. Import-light: nothing here imports torch at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ft_core.api.errors import FtCoreError, OptionsError
from ft_core.api.modeling import linear_module_names, name_matches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api.descriptors import ModelFamily


@dataclass
class LoraSettings:
    """Options shared by every LoRA-style adapter method (subclass it to add a method's own). Since 0.3.0."""

    #: Rank of the low-rank update matrices.
    rank: int = 8
    #: Scaling numerator: the update is scaled by ``alpha / rank`` (``alpha / sqrt(rank)`` with rsLoRA); ``null``
    #: = 2 x rank (scaling 2, LLaMA-Factory's default).
    alpha: float | None = None
    #: Dropout on the LoRA input.
    dropout: float = 0.0
    #: Module names to adapt: ``all`` (every linear layer except the output head, or the model family's LoRA
    #: targets), a list, or ``"q_proj,v_proj"``.
    targets: list[str] | str = "all"
    #: Modules trained in full and saved with the adapter (e.g. ``embed_tokens``, ``lm_head``); a list or a
    #: comma-separated string (``"embed_tokens,lm_head"``).
    modules_to_save: list[str] | str = field(default_factory=list)
    #: Which biases train: ``none``, ``all`` or ``lora_only``.
    bias: Literal["none", "all", "lora_only"] = "none"
    #: Rank-stabilised scaling ``alpha / sqrt(rank)``.
    use_rslora: bool = False

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise OptionsError(f"rank must be >= 1, got {self.rank}")
        if self.alpha is None:
            self.alpha = 2.0 * self.rank
        if isinstance(self.modules_to_save, str):  # LLaMA-Factory's comma list: "embed_tokens,lm_head"
            self.modules_to_save = [m.strip() for m in self.modules_to_save.split(",") if m.strip()]
        if not 0.0 <= self.dropout < 1.0:
            raise OptionsError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.targets, str) and self.targets != "all":
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        if not self.targets:
            raise OptionsError("targets must be 'all' or a non-empty list of module names")


def lora_target_names(model: Any, settings: LoraSettings, family: ModelFamily | None) -> list[str]:
    """The module names ``settings`` adapt in ``model`` (``all``: the family's LoRA targets, else every linear layer
    but the output head). A name in ``targets`` or ``modules_to_save`` that matches no module of ``model`` is an
    :class:`FtCoreError` listing the linear modules. Since 0.3.0."""
    available = linear_module_names(model, None)
    targets = linear_module_names(model, family) if settings.targets == "all" else list(settings.targets)
    names = [name for name, _ in model.named_modules()]
    for key, wanted in (("targets", targets), ("modules_to_save", settings.modules_to_save)):
        missing = [w for w in wanted if not any(name_matches(n, w) for n in names)]
        if missing:
            raise FtCoreError(
                f"adapter.{key}: {', '.join(repr(m) for m in missing)} not found in {type(model).__name__}. "
                f"Linear modules available: {', '.join(available)} (or use targets: all)"
            )
    return targets
