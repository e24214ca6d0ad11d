"""The run plan: everything a run decided before any weights load, frozen, shared by ``plan``, ``prepare``, ``run``
and the run manifest.

Standard library only. The engine builds a :class:`RunPlan` from a validated config (``ft-core plan CONFIG`` prints
it); stages and plugins read it as ``run.plan`` and add their own decisions during the run with
``run.record(key, value, reason)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api.config import RunConfig
    from ft_core.api.descriptors import ModelFamily
    from ft_core.api.resolved_template import ResolvedTemplate


@dataclass(frozen=True)
class Decision:
    """One decision and why it was taken. ``by`` names who decided: ``ft-core`` or a plugin's distribution."""

    value: Any
    reason: str = ""
    by: str = "ft-core"

    def manifest(self) -> dict[str, Any]:
        """The decision as JSON-ready data."""
        return {"value": self.value, "reason": self.reason, "by": self.by}


@dataclass(frozen=True)
class ActivePlugin:
    """A plugin whose lifecycle hooks act in this run, and why (a selected component, a config section, on by
    default)."""

    name: str
    distribution: str
    version: str
    reason: str

    def manifest(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DataStats:
    """What the prepared data holds: rows and tokens per split, and the training rows' lengths."""

    train_rows: int
    train_tokens: int
    longest_row: int
    eval_rows: int | None = None
    eval_tokens: int | None = None
    from_cache: bool = False

    def manifest(self) -> dict[str, Any]:
        """The statistics as JSON-ready data."""
        return {
            "train_rows": self.train_rows,
            "train_tokens": self.train_tokens,
            "mean_tokens_per_row": round(self.train_tokens / max(self.train_rows, 1), 1),
            "longest_row": self.longest_row,
            "eval_rows": self.eval_rows,
            "eval_tokens": self.eval_tokens,
            "from_cache": self.from_cache,
        }


def _frozen(mapping: Mapping[str, Decision]) -> Mapping[str, Decision]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RunPlan:
    """One run, resolved: config, components, tokenizer, template, model family, data statistics and every engine
    decision (``decisions``: precision, device, attention, checkpointing, packing, RoPE scaling, ...) with its reason.

    ``checkpointing``, ``dtype`` and ``attention`` are the engine's own objects behind the matching decisions.
    """

    config: RunConfig
    model_path: str
    model_type: str
    tokenizer: Any
    template: ResolvedTemplate | None
    family: ModelFamily | None
    family_record: Mapping[str, Any]
    active_plugins: tuple[ActivePlugin, ...]
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    data: DataStats | None = None
    #: The longest sequence of each prepared training row: its tokens (causal-LM rows), or its prompt plus its
    #: longest answer (preference / unpaired rows); empty for other rows or without data.
    row_lengths: tuple[int, ...] = ()
    dtype: Any = None
    attention: Any = None
    checkpointing: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "decisions", _frozen(self.decisions))

    def decision(self, key: str) -> Decision | None:
        """The decision recorded under ``key``, if any."""
        return self.decisions.get(key)

    def is_active(self, distribution: str) -> bool:
        """Whether a plugin of ``distribution`` (or entry-point name) acts in this run."""
        return any(distribution in (p.distribution, p.name) for p in self.active_plugins)

    def manifest(self) -> dict[str, Any]:
        """The plan as the run manifest records it."""
        record: dict[str, Any] = {
            "model": {"path": self.model_path, "model_type": self.model_type},
            "model_family": dict(self.family_record),
            "decisions": {key: decision.manifest() for key, decision in self.decisions.items()},
            "active_plugins": [plugin.manifest() for plugin in self.active_plugins],
        }
        if self.template is not None:
            record["template"] = {**self.template.manifest(), "system": self.config.template.system}
        if self.data is not None:
            record["data"] = self.data.manifest()
        return record

    def describe(self) -> list[str]:
        """The plan as the lines ``ft-core plan`` prints."""
        config = self.config
        lines = [
            f"model: {config.model.name_or_path} ({self.model_type}) -> {self.model_path}",
            f"family: {self.family_record.get('name') or 'none (generic defaults)'}",
        ]
        if self.template is not None:
            lines.append(
                f"template: {self.template.name} ({self.template.distribution} {self.template.version})"
            )
        lines.append("components:")
        lines += [
            f"  {s.section}: {s.name} ({s.distribution} {s.version})"
            for selections in config.selections.values()
            for s in selections
        ]
        lines.append("active plugins:")
        lines += [f"  {p.name} ({p.distribution} {p.version}): {p.reason}" for p in self.active_plugins]
        if self.data is not None:
            stats = self.data
            lines.append(
                f"data: {stats.train_rows:,} training rows, {stats.train_tokens:,} tokens, longest "
                f"{stats.longest_row}"
                + (f"; {stats.eval_rows:,} evaluation rows" if stats.eval_rows is not None else "")
                + (" (from the cache)" if stats.from_cache else "")
            )
        lines.append("decisions:")
        for key, decision in self.decisions.items():
            by = "" if decision.by == "ft-core" else f" [{decision.by}]"
            reason = f" — {decision.reason}" if decision.reason else ""
            lines.append(f"  {key}: {_text(decision.value)}{reason}{by}")
        return lines


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
