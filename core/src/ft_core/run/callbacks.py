"""Built-in metric callbacks: a console line per log step and a ``metrics.jsonl`` file."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def console_callback() -> Any:
    """Print ``step 10/30 | loss 1.23 | lr 1e-4 | 2.1 s/step`` lines."""
    from transformers import TrainerCallback

    class ConsoleCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.first_step: int | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()
            self.first_step = state.global_step
            print(f"training: {state.max_steps} optimizer steps", flush=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs:
                return
            done = state.global_step - (self.first_step or 0)
            rate = (time.monotonic() - self.started) / done if done else 0.0
            parts = [f"step {state.global_step}/{state.max_steps}"]
            parts += [f"{k} {_format(v)}" for k, v in logs.items() if k not in ("epoch", "total_flos")]
            if rate:
                parts.append(f"{rate:.2f} s/step")
            print(" | ".join(parts), file=sys.stdout, flush=True)

    return ConsoleCallback()


def jsonl_callback(run_dir: Path) -> Any:
    """Append every log record (with step and epoch) to ``run_dir/metrics.jsonl``."""
    from transformers import TrainerCallback

    path = Path(run_dir) / METRICS_FILE

    class JsonlCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            record = {"step": state.global_step, "epoch": state.epoch, **logs}
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, default=float) + "\n")

    return JsonlCallback()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl``; records from before a resume are superseded by later ones per step."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
