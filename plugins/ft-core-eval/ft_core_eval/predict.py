"""``ft-core predict``: generate an answer for every prompt of a dataset and score it against the reference."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import (
    ChatRequest,
    CliCommand,
    Conversation,
    FtCoreError,
    SamplingOptions,
    add_generation_flags,
    generation_flags,
)
from ft_core_eval.targets import default_output, load_conversations, resolve_target

logger = logging.getLogger(__name__)

PREDICTIONS = "generated_predictions.jsonl"
RESULTS = "predict_results.json"


def split_prompt(conversation: Conversation) -> tuple[list[dict[str, Any]], str] | None:
    """The messages before the last assistant turn, and that turn's text (the reference); ``None`` when the
    conversation has no assistant turn with text to compare to."""
    messages = conversation.to_hf()
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None or last == 0 or not str(messages[last].get("content") or "").strip():
        return None
    return messages[:last], str(messages[last]["content"])


class PredictCommand(CliCommand):
    help: ClassVar[str] = "generate answers for a dataset's prompts and score them (BLEU-4, ROUGE-1/2/L)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target",
            metavar="RUN_DIR|MODEL",
            help="a run folder, a Hugging Face model folder or a .gguf file",
        )
        parser.add_argument(
            "--dataset",
            required=True,
            help="dataset name(s), comma-separated (dataset_info.json or demo sets)",
        )
        parser.add_argument(
            "--dataset-dir", default="data", help="folder of dataset_info.json (default: data)"
        )
        parser.add_argument("--max-samples", type=int, help="score only the first N rows of each dataset")
        parser.add_argument(
            "-o",
            "--output",
            help=f"the predictions file (default: RUN_DIR/predict/{PREDICTIONS}); {RESULTS} goes beside it",
        )
        parser.add_argument("--batch-size", type=int, default=8, help="prompts generated together (8)")
        add_generation_flags(parser, "answer")
        parser.add_argument("--engine", default="hf", help="inference engine (default: hf)")
        parser.add_argument(
            "--adapter",
            action="append",
            default=[],
            metavar="DIR",
            help="merge this PEFT adapter (or run folder's adapter) into the model first (repeatable, in order)",
        )

    def run(self, args: argparse.Namespace) -> int:
        if args.batch_size < 1:
            raise FtCoreError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.max_samples is not None and args.max_samples < 1:
            raise FtCoreError(f"--max-samples must be >= 1, got {args.max_samples}")
        engine = args.plugins.get("inference_engine", args.engine)
        target = resolve_target(args, args.target)
        try:
            sampling = SamplingOptions.from_settings(
                target.generation, generation_flags(args), {"stop": target.stop_words}
            )
        except ValueError as exc:
            raise FtCoreError(f"predict: {exc}") from None
        names = [name.strip() for name in args.dataset.split(",") if name.strip()]
        conversations = load_conversations(args, names, args.dataset_dir, args.max_samples)
        rows: list[tuple[ChatRequest, str]] = []
        skipped = 0
        for conversation in conversations:
            split = split_prompt(conversation)
            if split is None or conversation.images:
                skipped += 1
                continue
            messages, label = split
            if target.system and messages[0]["role"] != "system":
                messages = [{"role": "system", "content": target.system}, *messages]
            rows.append((ChatRequest(messages=messages, tools=conversation.tools, sampling=sampling), label))
        if skipped:
            logger.warning(
                "%d row(s) skipped: no assistant answer to compare to, or images (not supported)", skipped
            )
        if not rows:
            raise FtCoreError(
                f"--dataset {args.dataset}: no row has a prompt and a reference answer to score"
            )
        output = Path(args.output) if args.output else default_output(args.target, "predict") / PREDICTIONS
        logger.info("loading %s ...", target.description)
        started = time.perf_counter()
        model = engine.load(target, engine.options_schema())
        loaded = time.perf_counter()
        results = predict(model, rows, args.batch_size)
        finished = time.perf_counter()
        metrics = write_results(output, rows, results, finished - loaded, loaded - started, args.batch_size)
        for key, value in metrics.items():
            print(f"{key:<34} {value}")
        print(f"predictions: {output}")
        return 0


def predict(model: Any, rows: list[tuple[ChatRequest, str]], batch_size: int) -> list[str]:
    """The generated answers of ``rows``, ``batch_size`` prompts per generate call."""
    answers: list[str] = []
    for start in range(0, len(rows), batch_size):
        batch = [request for request, _ in rows[start : start + batch_size]]
        answers += [response.text.strip() for response in model.generate(batch)]
        logger.info("generated %d/%d", len(answers), len(rows))
    return answers


def write_results(
    output: Path,
    rows: list[tuple[ChatRequest, str]],
    answers: list[str],
    runtime: float,
    preparation: float,
    batch_size: int,
) -> dict[str, float]:
    """Write the predictions (one JSON object per line: ``prompt``, ``predict``, ``label``, ``messages``) and
    ``predict_results.json``; returns the metrics."""
    from ft_core_eval.metrics import mean_scores, similarity

    output.parent.mkdir(parents=True, exist_ok=True)
    scores = []
    with output.open("w", encoding="utf-8") as lines:
        for (request, label), answer in zip(rows, answers, strict=True):
            scores.append(similarity(answer, label))
            prompt = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
            row = {"prompt": prompt, "predict": answer, "label": label, "messages": request.messages}
            lines.write(json.dumps(row, ensure_ascii=False) + "\n")
    steps = -(-len(rows) // batch_size)
    metrics = {f"predict_{key}": value for key, value in mean_scores(scores).items()}
    metrics.update(
        predict_samples=len(rows),
        predict_runtime=round(runtime, 4),
        predict_samples_per_second=round(len(rows) / runtime, 3) if runtime > 0 else 0.0,
        predict_steps_per_second=round(steps / runtime, 3) if runtime > 0 else 0.0,
        predict_model_preparation_time=round(preparation, 4),
    )
    (output.parent / RESULTS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
