"""BLEU-4 and ROUGE-1/2/L of a prediction against its reference, exactly as LLaMA-Factory's
``predict_with_generate`` (``ComputeSimilarity``) and ``scripts/eval_bleu_rouge.py`` compute them:

- BLEU-4: ``nltk``'s ``sentence_bleu`` over *characters* (``list(label)``, ``list(pred)``) with
  ``SmoothingFunction().method3``;
- ROUGE-1/2/L: ``rouge-chinese``'s F1 over ``jieba`` words (``" ".join(jieba.cut(text))``); 0 when either side has
  no word;
- each a percentage rounded to 4 digits; a set's score is the mean over its samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

#: Keys of :func:`similarity` (and, prefixed with ``predict_``, of ``predict_results.json``).
METRICS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")


def _jieba() -> object:
    import jieba

    jieba.setLogLevel(logging.CRITICAL)  # it prints its dictionary loading otherwise
    return jieba


def similarity(prediction: str, reference: str) -> dict[str, float]:
    """BLEU-4 and ROUGE-1/2/L (percentages) of one prediction."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba = _jieba()
    hypothesis = list(jieba.cut(prediction))  # type: ignore[attr-defined]
    words = list(jieba.cut(reference))  # type: ignore[attr-defined]
    if not " ".join(hypothesis).split() or not " ".join(words).split():
        rouge = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    else:
        scores = Rouge().get_scores(" ".join(hypothesis), " ".join(words))[0]
        rouge = {key: round(value["f"] * 100, 4) for key, value in scores.items()}
    bleu = sentence_bleu([list(reference)], list(prediction), smoothing_function=SmoothingFunction().method3)
    return {"bleu-4": round(float(bleu) * 100, 4), **rouge}


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over ``rows`` (0 for no rows)."""
    return {key: round(sum(r[key] for r in rows) / len(rows), 4) if rows else 0.0 for key in METRICS}
