"""Multiple-choice task files (MMLU-style) and their scoring from the next-token logits of the answer letters.

A task is a folder holding ``test.jsonl`` (the scored questions) and optionally ``dev.jsonl`` (few-shot examples),
or one ``.json`` / ``.jsonl`` file whose rows may say ``"split": "dev"`` (the others are scored). A row:
``{"subject": "geography", "question": "...", "A": "...", "B": "...", "C": "...", "D": "...", "answer": "B"}``
(or ``"choices": ["...", "...", "...", "..."]`` instead of ``A``-``D``). Names of the tasks shipped with this
plugin (``demo``) work too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from ft_core.api import FtCoreError

CHOICES = ("A", "B", "C", "D")
#: LLaMA-Factory's English evaluation template: the subject line starts the first user turn, each choice is
#: ``\nA. text``, the question ends with ``\nAnswer:``, and the answer letters are scored as `` A`` ... `` D``.
SYSTEM = "The following are multiple choice questions (with answers) about {subject}.\n\n"
ANSWER = "\nAnswer:"
PREFIX = " "


@dataclass(frozen=True)
class Question:
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str
    source: str

    def user_turn(self) -> str:
        options = "".join(f"\n{letter}. {text}" for letter, text in zip(CHOICES, self.choices, strict=True))
        return f"{self.question}{options}{ANSWER}"


def builtin_tasks() -> list[str]:
    """Names of the tasks shipped with the plugin."""
    root = files("ft_core_eval").joinpath("tasks")
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def _read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    where = str(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FtCoreError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise FtCoreError(f"{where}: expected a JSON list of question objects")
        return [(f"{where} row {i + 1}", row) for i, row in enumerate(data)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((f"{where} line {number}", json.loads(line)))
            except ValueError as exc:
                raise FtCoreError(f"{where} line {number}: not valid JSON ({exc})") from None
    return rows


def _question(source: str, row: Any) -> Question:
    if not isinstance(row, dict):
        raise FtCoreError(f"{source}: expected an object with question, A-D (or choices), answer, subject")
    choices = row.get("choices")
    if choices is None:
        choices = [row.get(letter) for letter in CHOICES]
    missing = [
        key for key in ("question", "answer") if not isinstance(row.get(key), str) or not row[key].strip()
    ]
    if missing:
        raise FtCoreError(f"{source}: missing {' and '.join(missing)}")
    if (
        not isinstance(choices, list)
        or len(choices) != 4
        or any(not isinstance(c, (str, int, float)) for c in choices)
    ):
        raise FtCoreError(f"{source}: expected four choices (A, B, C, D or a 4-item 'choices' list)")
    answer = row["answer"].strip().upper()
    if answer not in CHOICES:
        raise FtCoreError(f"{source}: answer must be one of A, B, C, D, got {row['answer']!r}")
    subject = str(row.get("subject") or "general").strip()
    return Question(subject, row["question"].strip(), tuple(str(c) for c in choices), answer, source)  # type: ignore[arg-type]


def load_task(reference: str) -> tuple[str, list[Question], list[Question]]:
    """The task's name, its scored questions and its few-shot examples."""
    path = Path(os.path.expanduser(reference))
    if not path.exists() and "/" not in reference and reference in builtin_tasks():
        path = Path(str(files("ft_core_eval").joinpath("tasks").joinpath(reference)))
    if not path.exists():
        raise FtCoreError(
            f"--task {reference}: no such task file or folder (relative paths start from {Path.cwd()}); "
            f"built-in tasks: {', '.join(builtin_tasks())}"
        )
    if path.is_dir():
        test = next((path / f"test{s}" for s in (".jsonl", ".json") if (path / f"test{s}").is_file()), None)
        if test is None:
            raise FtCoreError(f"--task {reference}: the folder holds no test.jsonl or test.json")
        dev = next((path / f"dev{s}" for s in (".jsonl", ".json") if (path / f"dev{s}").is_file()), None)
        scored = [_question(src, row) for src, row in _read_rows(test)]
        shots = [_question(src, row) for src, row in _read_rows(dev)] if dev else []
    else:
        scored, shots = [], []
        for src, row in _read_rows(path):
            split = row.get("split", "test") if isinstance(row, dict) else "test"
            (shots if split == "dev" else scored).append(_question(src, row))
    if not scored:
        raise FtCoreError(f"--task {reference}: no questions to score")
    return path.stem if path.is_file() else path.name, scored, shots


def conversation(question: Question, examples: list[Question]) -> list[dict[str, str]]:
    """The chat turns that ask ``question`` after the few-shot ``examples`` (each answered by its letter)."""
    messages: list[dict[str, str]] = []
    for example in examples:
        messages += [
            {"role": "user", "content": example.user_turn()},
            {"role": "assistant", "content": example.answer},
        ]
    messages.append({"role": "user", "content": question.user_turn()})
    messages[0] = {
        **messages[0],
        "content": SYSTEM.format(subject=question.subject.replace("_", " ")) + messages[0]["content"],
    }
    return messages


def choice_token_ids(tokenizer: Any) -> list[int]:
    """The token of each answer letter as the model would write it after ``Answer:`` (`` A`` ... `` D``)."""
    return [tokenizer.encode(PREFIX + letter, add_special_tokens=False)[-1] for letter in CHOICES]


def score(
    model: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    template_kwargs: dict[str, Any],
    batch_size: int,
) -> list[str]:
    """The letter whose token has the largest next-token logit after each prompt (rendered with the chat template
    and its generation prompt)."""
    import torch

    ids = choice_token_ids(tokenizer)
    if len(set(ids)) != 4:
        raise FtCoreError("the tokenizer gives the same token to two answer letters; it cannot score A-D")
    encoded = [
        tokenizer.apply_chat_template(
            p, tokenize=True, add_generation_prompt=True, return_dict=False, **template_kwargs
        )
        for p in prompts
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = next(model.parameters()).device
    letters: list[str] = []
    for start in range(0, len(encoded), batch_size):
        batch = [
            list(e["input_ids"] if isinstance(e, dict) or hasattr(e, "keys") else e)
            for e in encoded[start : start + batch_size]
        ]
        width = max(len(row) for row in batch)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in batch], device=device)  # left padding
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, -1, :]
        picked = logits[:, ids].float().argmax(dim=-1).tolist()
        letters += [CHOICES[i] for i in picked]
    return letters
