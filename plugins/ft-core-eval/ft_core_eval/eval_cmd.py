"""``ft-core eval``: accuracy on a multiple-choice benchmark, per subject and overall."""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import CliCommand, FtCoreError
from ft_core_eval.targets import default_output, resolve_target

logger = logging.getLogger(__name__)

RESULTS = "eval_results.json"
PREDICTIONS = "eval_predictions.jsonl"


class EvalCommand(CliCommand):
    help: ClassVar[str] = (
        "score a run or model on a multiple-choice benchmark (MMLU-style), accuracy per subject"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target",
            metavar="RUN_DIR|MODEL",
            help="a run folder, a Hugging Face model folder or a .gguf file",
        )
        parser.add_argument(
            "--task", required=True, help="a task file or folder (format: docs/using-results.md), or 'demo'"
        )
        parser.add_argument(
            "--shots",
            type=int,
            default=0,
            choices=range(0, 6),
            metavar="0..5",
            help="few-shot examples per question from the task's dev split, same subject (default 0)",
        )
        parser.add_argument("--batch-size", type=int, default=4, help="questions per forward pass (4)")
        parser.add_argument(
            "-o", "--output", help="results folder (default: RUN_DIR/eval-TASK or ./eval-TASK)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core_eval.mcq import conversation, load_task

        if args.batch_size < 1:
            raise FtCoreError(f"--batch-size must be >= 1, got {args.batch_size}")
        name, questions, dev = load_task(args.task)
        examples: dict[str, list[Any]] = defaultdict(list)
        for example in dev:
            examples[example.subject].append(example)
        short = sorted({q.subject for q in questions if len(examples[q.subject]) < args.shots})
        if short:
            raise FtCoreError(
                f"--shots {args.shots}: the task's dev split has fewer than {args.shots} examples for "
                f"{', '.join(short)}; add dev rows or use fewer shots"
            )
        prompts = [conversation(q, examples[q.subject][: args.shots]) for q in questions]
        target = resolve_target(args, args.target)
        letters = _score(target, prompts, args.batch_size)
        by_subject: dict[str, list[bool]] = defaultdict(list)
        output = Path(args.output) if args.output else default_output(args.target, f"eval-{name}")
        output.mkdir(parents=True, exist_ok=True)
        with (output / PREDICTIONS).open("w", encoding="utf-8") as lines:
            for question, letter in zip(questions, letters, strict=True):
                by_subject[question.subject].append(letter == question.answer)
                row = {"subject": question.subject, "question": question.question, "answer": question.answer}
                lines.write(
                    json.dumps({**row, "predict": letter, "source": question.source}, ensure_ascii=False)
                    + "\n"
                )
        results = summarize(by_subject)
        record = {"task": name, "shots": args.shots, "target": args.target, **results}
        (output / RESULTS).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        width = max(len(s) for s in [*results["accuracy"], "subject"])
        print(f"{'subject':<{width}}  accuracy  questions")
        for subject, accuracy in results["accuracy"].items():
            print(f"{subject:<{width}}  {accuracy:7.2f}%  {results['questions'][subject]:>9}")
        print(f"results: {output / RESULTS}")
        return 0


def _score(target: Any, prompts: list[list[dict[str, str]]], batch_size: int) -> list[str]:
    import torch
    from transformers import AutoTokenizer

    from ft_core_eval.mcq import score

    logger.info("loading %s ...", target.description)
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    model = target.load_model(dtype).eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    tokenizer = AutoTokenizer.from_pretrained(target.tokenizer_path)
    logger.info("scoring %d questions ...", len(prompts))
    return score(model, tokenizer, prompts, dict(target.template_kwargs), batch_size)


def summarize(by_subject: dict[str, list[bool]]) -> dict[str, Any]:
    """Accuracy (percent, 2 digits) per subject in name order, then ``Average`` over every question (as
    LLaMA-Factory's eval reports it), and the number of questions of each."""
    accuracy = {s: round(100 * sum(v) / len(v), 2) for s, v in sorted(by_subject.items())}
    every = [c for v in by_subject.values() for c in v]
    accuracy["Average"] = round(100 * sum(every) / len(every), 2) if every else 0.0
    questions = {s: len(v) for s, v in sorted(by_subject.items())}
    questions["Average"] = len(every)
    return {"accuracy": accuracy, "questions": questions}
