"""Check that a plugin's entry-point module registers without importing heavy libraries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable

HEAVY = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "bitsandbytes",
    "vllm",
    "deepspeed",
)


def check_import_light(module: str, forbidden: Iterable[str] = HEAVY) -> None:
    """Import ``module`` and run its registration hooks in a fresh interpreter; fail if any of
    ``forbidden`` got imported (``ft-core --help`` and ``ft-core plugins`` must stay fast)."""
    names = sorted(set(forbidden))
    code = (
        f"import sys, {module} as plugin; from ft_core.bootstrap import load_plugins; "
        "load_plugins(strict=True, entry_points=False, extra=[(plugin, 'under-test')]); "
        f"print(','.join(sorted(set({names!r}) & set(sys.modules))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"registering {module} failed:\n{result.stderr}"
    imported = result.stdout.strip()
    assert not imported, (
        f"registering {module} imported {imported}: import them inside the component's methods"
    )
