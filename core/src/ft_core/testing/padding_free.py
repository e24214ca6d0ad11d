"""Test helpers for stages with ``packs_padded_batches``: run the same config padded and packed and compare the
logged steps (``data.packing: true`` must train exactly as the padded run does, only faster)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class PackingComparison:
    """The logged training steps of a padded and a packed run, the packed run's ``packing`` decision (from its
    manifest) and how many forward passes ran padding-free."""

    padded: list[dict[str, Any]]
    packed: list[dict[str, Any]]
    packing: dict[str, Any]
    padded_packing: Any
    flattened: int


def logged_steps(run_dir: Path) -> list[dict[str, Any]]:
    """The training steps a run logged (``metrics.jsonl`` lines with a ``loss``)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines]
    return [m for m in (s.get("metrics", s) for s in steps) if "loss" in m]


def _packing_decision(run_dir: Path) -> Any:
    return json.loads((run_dir / "manifest.json").read_text())["decisions"]["packing"]["value"]


def compare_packed_with_padded(run: Callable[[bool], Path], monkeypatch: Any) -> PackingComparison:
    """``run(packing)`` runs the config with ``data.packing`` false, then true, and returns its run folder; the
    padding-free passes of the packed run are counted (``monkeypatch``: pytest's fixture)."""
    from ft_core.engine.training.padding_free import PaddingFreeForward

    flattened: list[int] = []
    original = PaddingFreeForward.flatten

    def counting(self: Any, module: Any, args: Any, kwargs: Any) -> Any:
        result = original(self, module, args, kwargs)
        if result is not None:
            flattened.append(result[1]["input_ids"].shape[1])
        return result

    monkeypatch.setattr(PaddingFreeForward, "flatten", counting)
    padded_dir = run(False)
    padded_passes = len(flattened)
    packed_dir = run(True)
    return PackingComparison(
        padded=logged_steps(padded_dir),
        packed=logged_steps(packed_dir),
        packing=_packing_decision(packed_dir),
        padded_packing=_packing_decision(padded_dir),
        flattened=len(flattened) - padded_passes,
    )


def assert_trains_the_same(
    comparison: PackingComparison, keys: Sequence[str], *, rel: float = 1e-3, abs: float = 1e-4
) -> None:
    """The packed run ran padding-free and logged, step by step, the values of ``keys`` the padded run logged
    (within ``rel`` / ``abs``; a key a step lacks is skipped)."""
    import pytest

    assert comparison.padded_packing == "off", comparison.padded_packing
    assert "padding-free" in comparison.packing["mode"], comparison.packing
    assert comparison.flattened > 0
    assert len(comparison.packed) == len(comparison.padded) > 0
    for padded, packed in zip(comparison.padded, comparison.packed, strict=True):
        for key in keys:
            if key in padded:
                assert packed[key] == pytest.approx(padded[key], rel=rel, abs=abs), key
