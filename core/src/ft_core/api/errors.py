"""Error types of ft-core.

Every error a user can cause derives from :class:`FtCoreError`; the CLI prints its message (no traceback)
and exits with status 2. Messages say where the problem is (file, row, key), what was expected and what to do.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable


class FtCoreError(Exception):
    """A user-facing error: the message is complete and is printed without a traceback."""


class ConfigError(FtCoreError):
    """One or more problems in a run configuration, reported together."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(self.problems)} problem(s){where}:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class DataError(FtCoreError):
    """A dataset file or row that cannot be used."""


class TemplateMismatchError(FtCoreError):
    """A chat template renders a conversation differently from the tokenizer's own template."""


class PluginError(FtCoreError):
    """A plugin failed to load or registered something invalid."""


class ComponentNotFoundError(FtCoreError):
    """A configured component name is not registered by any installed plugin."""


class OptionsError(FtCoreError, ValueError):
    """A component's options are invalid. Raise it from an options dataclass's ``__post_init__``: the config
    validator reports the message as a problem of the component's config section (with the others, at once)."""


class RunCancelled(FtCoreError):
    """A run was cancelled on request (signal or ``ft-core cancel``); its last checkpoint is kept."""


def _shared_start(first: str, second: str) -> int:
    """How many leading characters two names share."""
    return sum(
        1 for _ in itertools.takewhile(lambda pair: pair[0] == pair[1], zip(first, second, strict=False))
    )


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or an empty string. Of equally close candidates
    the one sharing the longest start with ``name`` wins (``adamv``: ``adamw``, not ``badam``)."""
    name = str(name)
    scored = []
    for candidate in {str(c) for c in candidates}:
        ratio = difflib.SequenceMatcher(None, name, candidate).ratio()
        if ratio >= 0.6:
            scored.append((ratio, _shared_start(name, candidate), candidate))
    return f" Did you mean '{max(scored)[2]}'?" if scored else ""
