"""Which TRL releases this plugin supports, checked without importing TRL (``ft-core validate`` stays fast)."""

from __future__ import annotations

import importlib.metadata
import re

#: The TRL releases the rm stage is built and tested on: ``>= MIN_TRL`` and ``< BELOW_TRL`` (``trl.RewardTrainer``
#: takes pre-tokenized ``chosen_ids`` / ``rejected_ids`` rows and ``DataCollatorForPreference`` in 1.16; a 2.x
#: release may change them).
MIN_TRL = "1.16"
BELOW_TRL = "2"
SUPPORTED_TRL = f">={MIN_TRL},<{BELOW_TRL}"


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.16.0rc1"`` -> ``(1, 16, 0)``: the leading numeric release parts."""
    release = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in release.group(0).split(".")) if release else ()


def trl_problem(stage: str, installed: str | None = None) -> str | None:
    """Why the installed TRL cannot run ``stage`` (not installed, or outside :data:`SUPPORTED_TRL`), else ``None``.
    ``installed`` overrides the installed version (tests)."""
    if installed is None:
        try:
            installed = importlib.metadata.version("trl")
        except importlib.metadata.PackageNotFoundError:
            return f"stage {stage}: TRL is not installed; pip install 'trl{SUPPORTED_TRL}'"
    version = version_tuple(installed)
    if not (version_tuple(MIN_TRL) <= version < version_tuple(BELOW_TRL)):
        return (
            f"stage {stage}: TRL {installed} is not supported by ft-core-rm, which supports trl{SUPPORTED_TRL}; "
            f"pip install 'trl{SUPPORTED_TRL}' (or an ft-core-rm release made for TRL {installed})"
        )
    return None
