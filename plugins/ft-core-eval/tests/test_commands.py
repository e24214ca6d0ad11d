"""``ft-core predict`` and ``ft-core eval`` on the tiny model, and the task file format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import ft_core_eval
from ft_core.api import FtCoreError
from ft_core.testing.import_light import check_import_light
from ft_core_eval import mcq
from ft_core_eval.eval_cmd import summarize


def test_registers_predict_and_eval(make_plugins: Any) -> None:
    plugins = make_plugins(ft_core_eval, distribution="ft-core-eval")
    assert {"predict", "eval"} <= set(plugins.names("cli_command"))


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_eval", forbidden=("torch", "transformers", "nltk", "jieba", "rouge_chinese"))


def test_predict_writes_predictions_and_metrics(
    command_args: Any, tiny_model_dir: str, tmp_path: Path
) -> None:
    out = tmp_path / "pred" / "generated_predictions.jsonl"
    argv = [
        tiny_model_dir,
        "--dataset",
        "identity",
        "--max-samples",
        "5",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
        "--output",
        str(out),
    ]
    assert ft_core_eval.PredictCommand().run(command_args("predict", argv)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all({"prompt", "predict", "label", "messages"} <= set(r) for r in rows)
    assert rows[0]["messages"][-1]["role"] == "user" and rows[0]["label"]
    results = json.loads((out.parent / "predict_results.json").read_text())
    for key in ("predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"):
        assert 0.0 <= results[key] <= 100.0
    assert results["predict_samples"] == 5 and results["predict_runtime"] > 0


def test_predict_metrics_are_the_mean_of_the_rows(tmp_path: Path) -> None:
    from ft_core.api import ChatRequest
    from ft_core_eval.predict import write_results

    rows = [
        (ChatRequest([{"role": "user", "content": "q"}]), "Paris"),
        (ChatRequest([{"role": "user", "content": "r"}]), "Rome"),
    ]
    metrics = write_results(tmp_path / "p.jsonl", rows, ["Paris", ""], 1.0, 0.5, 2)
    assert metrics["predict_bleu-4"] == 50.0 and metrics["predict_rouge-l"] == 50.0
    assert metrics["predict_steps_per_second"] == 1.0


def test_demo_task_format() -> None:
    name, questions, dev = mcq.load_task("demo")
    assert name == "demo" and len(questions) == 12 and len(dev) == 15
    assert sorted({q.subject for q in questions}) == ["arithmetic", "geography", "science"]
    prompt = mcq.conversation(questions[4], [d for d in dev if d.subject == "geography"][:1])
    assert prompt[0]["content"].startswith(
        "The following are multiple choice questions (with answers) about geography.\n\nWhat is the capital of Japan?"
        "\nA. Tokyo\nB. Beijing\nC. Seoul\nD. Bangkok\nAnswer:"
    )
    assert prompt[1] == {"role": "assistant", "content": "A"}
    assert prompt[2]["content"].endswith("\nA. Berlin\nB. Paris\nC. Madrid\nD. Rome\nAnswer:")


def test_single_file_task_with_a_dev_split_and_choices_list(tmp_path: Path) -> None:
    task = tmp_path / "mine.jsonl"
    rows = [
        {"subject": "x", "question": "q1", "choices": ["a", "b", "c", "d"], "answer": "b"},
        {"subject": "x", "question": "q0", "choices": ["a", "b", "c", "d"], "answer": "A", "split": "dev"},
    ]
    task.write_text("\n".join(json.dumps(r) for r in rows))
    name, questions, dev = mcq.load_task(str(task))
    assert (name, [q.question for q in questions], [d.question for d in dev]) == ("mine", ["q1"], ["q0"])
    assert questions[0].answer == "B"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "E"}, "answer must be one of"),
        ({"question": "q", "A": "1", "B": "2", "answer": "A"}, "expected four choices"),
        ({"A": "1", "B": "2", "C": "3", "D": "4", "answer": "A"}, "missing question"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    task = tmp_path / "bad.jsonl"
    task.write_text(json.dumps(row) + "\n")
    with pytest.raises(FtCoreError, match=f"bad.jsonl line 1: {message}"):
        mcq.load_task(str(task))


def test_unknown_task_lists_the_builtin_ones() -> None:
    with pytest.raises(FtCoreError, match="built-in tasks: demo"):
        mcq.load_task("nope")


def test_summarize() -> None:
    results = summarize({"b": [True, False], "a": [True, True, True, False]})
    assert results["accuracy"] == {"a": 75.0, "b": 50.0, "Average": 66.67}
    assert results["questions"] == {"a": 4, "b": 2, "Average": 6}


def test_eval_five_shot_on_the_tiny_model(command_args: Any, tiny_model_dir: str, tmp_path: Path) -> None:
    argv = [tiny_model_dir, "--task", "demo", "--shots", "5", "--batch-size", "3", "--output", str(tmp_path)]
    assert ft_core_eval.EvalCommand().run(command_args("eval", argv)) == 0
    results = json.loads((tmp_path / "eval_results.json").read_text())
    assert list(results["accuracy"]) == ["arithmetic", "geography", "science", "Average"]
    assert results["questions"]["Average"] == 12 and results["shots"] == 5
    predictions = [
        json.loads(line) for line in (tmp_path / "eval_predictions.jsonl").read_text().splitlines()
    ]
    assert {p["predict"] for p in predictions} <= set("ABCD") and len(predictions) == 12


def test_batched_scoring_matches_one_at_a_time(tiny_model: Any, tiny_tokenizer: Any) -> None:
    """Left padding in a batch does not change which letter wins."""
    import torch

    _, questions, dev = mcq.load_task("demo")
    prompts = [
        mcq.conversation(q, [d for d in dev if d.subject == q.subject][: i % 3])
        for i, q in enumerate(questions)
    ]
    model = tiny_model.eval()
    batched = mcq.score(model, tiny_tokenizer, prompts, {}, batch_size=6)
    ids = mcq.choice_token_ids(tiny_tokenizer)
    single = []
    for prompt in prompts:
        tokens = tiny_tokenizer.apply_chat_template(
            prompt, tokenize=True, add_generation_prompt=True, return_dict=False
        )
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([list(tokens)])).logits[0, -1]
        single.append("ABCD"[int(logits[ids].argmax())])
    assert batched == single
