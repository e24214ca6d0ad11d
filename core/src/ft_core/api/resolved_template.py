"""The chat template a run resolved (a registered one, or the tokenizer's own), as stages, the plan and the manifest
see it. Standard library only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResolvedTemplate:
    """The chat template a run uses, and where it came from (recorded in the run manifest).

    ``version`` is the providing distribution's version, or ``sha256:<12 hex>`` of the Jinja text for a
    template derived from the tokenizer.
    """

    name: str
    jinja: str
    stop_words: tuple[str, ...]
    distribution: str
    version: str
    derived_from_tokenizer: bool
    tokenizer_template_may_differ: bool = False
    #: False for templates that rewrite earlier turns (each assistant turn is then encoded as its own row).
    prefix_stable: bool = True
    #: Answers end with the next turn's marker (a stop word) or EOS, trained after each answer.
    stop_at_next_turn: bool = False
    #: Extra Jinja variables: the template's defaults overridden by ``template.kwargs``.
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Splits generated text into ``(content, tool_calls)`` (``None``: the template has no tool format).
    parse_tool_calls: Callable[[str], tuple[str, list[dict[str, Any]]]] | None = field(
        default=None, compare=False, repr=False
    )

    def manifest(self) -> dict[str, Any]:
        """The (name, distribution, version, ...) record for the run manifest, without the Jinja text."""
        record = {
            key: value for key, value in asdict(self).items() if key not in ("jinja", "parse_tool_calls")
        }
        record["stop_words"] = list(self.stop_words)
        record["supports_tools"] = self.parse_tool_calls is not None
        return record
