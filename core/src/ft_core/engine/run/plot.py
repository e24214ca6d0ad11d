"""The loss-curve PNG written at the end of a run."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ft_core.engine.storage import write_atomic


def plot_loss(records: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Plot training (and eval) loss per step to ``path``; returns False when there is nothing to plot."""
    train = {r["step"]: r["loss"] for r in records if "loss" in r}
    if not train:  # a run shorter than logging_steps: the final average loss is the one point there is
        train = {r["step"]: r["train_loss"] for r in records if "train_loss" in r}
    evals = {r["step"]: r["eval_loss"] for r in records if "eval_loss" in r}
    if not train and not evals:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        steps = sorted(train)
        axes.plot(
            steps, [train[s] for s in steps], label="train loss", marker="." if len(steps) < 50 else None
        )
    if evals:
        steps = sorted(evals)
        axes.plot(steps, [evals[s] for s in steps], label="eval loss", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
    return True
