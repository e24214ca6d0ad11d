"""Which TRL releases this plugin supports, checked without importing TRL (``ft-core validate`` stays fast)."""

from __future__ import annotations

import importlib.metadata
import re

#: The TRL releases the cpo stage is built and tested on: ``>= MIN_TRL`` and ``< BELOW_TRL``. Its trainer is
#: experimental in TRL (``trl.experimental.cpo.CPOTrainer``, moved there in 1.x): a release without that module is
#: refused too (:data:`TRAINER_FILE`).
MIN_TRL = "1.16"
BELOW_TRL = "2"
SUPPORTED_TRL = f">={MIN_TRL},<{BELOW_TRL}"
#: The module of TRL's experimental CPOTrainer, as the installed distribution lists it.
TRAINER_FILE = "trl/experimental/cpo/cpo_trainer.py"


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.16.0rc1"`` -> ``(1, 16, 0)``: the leading numeric release parts."""
    release = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in release.group(0).split(".")) if release else ()


def trl_problem(stage: str, installed: str | None = None) -> str | None:
    """Why the installed TRL cannot run ``stage`` (not installed, or outside :data:`SUPPORTED_TRL`), else ``None``.
    ``installed`` overrides the installed version (tests)."""
    explicit = installed is not None
    if installed is None:
        try:
            installed = importlib.metadata.version("trl")
        except importlib.metadata.PackageNotFoundError:
            return f"stage {stage}: TRL is not installed; pip install 'trl{SUPPORTED_TRL}'"
    version = version_tuple(installed)
    if not (version_tuple(MIN_TRL) <= version < version_tuple(BELOW_TRL)):
        return (
            f"stage {stage}: TRL {installed} is not supported by ft-core-cpo, which supports trl{SUPPORTED_TRL}; "
            f"pip install 'trl{SUPPORTED_TRL}' (or an ft-core-cpo release made for TRL {installed})"
        )
    files = importlib.metadata.files("trl") if not explicit else None
    if files is not None and not any(str(file) == TRAINER_FILE for file in files):
        return (
            f"stage {stage}: the installed TRL {installed} has no trl.experimental.cpo (CPOTrainer), which ft-core-cpo "
            f"is built on; pip install 'trl{SUPPORTED_TRL}' with that module"
        )
    return None
