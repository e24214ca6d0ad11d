"""ft-core plugin: ``ft-core predict`` (batch generation over a dataset, scored with BLEU-4 and ROUGE-1/2/L as
LLaMA-Factory's ``predict_with_generate`` scores) and ``ft-core eval`` (multiple-choice benchmarks, MMLU-style,
scored from the next-token logits of the answer letters; accuracy per subject).

Import-light: torch, transformers, nltk, jieba and rouge-chinese are imported when a command runs.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import CliCommand, Register, hookimpl
from ft_core_eval.eval_cmd import EvalCommand
from ft_core_eval.predict import PredictCommand

__all__ = ["EvalCommand", "PredictCommand"]


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    register("predict", PredictCommand())
    register("eval", EvalCommand())
