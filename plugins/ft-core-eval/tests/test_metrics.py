"""BLEU-4 and ROUGE-1/2/L against hand-computed values (LLaMA-Factory's definitions)."""

from __future__ import annotations

import math

import pytest

from ft_core_eval.metrics import mean_scores, similarity


def test_identical_answers_score_100() -> None:
    assert similarity("The capital of France is Paris.", "The capital of France is Paris.") == {
        "bleu-4": 100.0,
        "rouge-1": 100.0,
        "rouge-2": 100.0,
        "rouge-l": 100.0,
    }


def test_bleu_is_over_characters() -> None:
    # abcde vs abcdf: character n-gram precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty
    expected = round(math.exp(sum(math.log(p) for p in (4 / 5, 3 / 4, 2 / 3, 1 / 2)) / 4) * 100, 4)
    assert similarity("abcde", "abcdf")["bleu-4"] == expected == 66.874


def test_rouge_is_over_words() -> None:
    # words: the cat sat / the cat ran: unigrams 2 of 3 both ways; bigrams 1 of 2; LCS 2 of 3
    scores = similarity("the cat sat", "the cat ran")
    assert scores["rouge-1"] == pytest.approx(66.6667)
    assert scores["rouge-2"] == pytest.approx(50.0)
    assert scores["rouge-l"] == pytest.approx(66.6667)
    assert similarity("abcde", "abcdf")["rouge-1"] == 0.0  # one word each, different


def test_an_empty_side_scores_zero() -> None:
    assert similarity("", "Paris") == {"bleu-4": 0.0, "rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    assert similarity("   ", "Paris")["rouge-l"] == 0.0


def test_chinese_text_is_cut_into_words() -> None:
    assert similarity("我爱北京", "我爱北京")["rouge-2"] == 100.0


def test_mean_over_samples() -> None:
    rows = [similarity("the same answer", "the same answer"), similarity("", "x")]
    assert mean_scores(rows) == {"bleu-4": 50.0, "rouge-1": 50.0, "rouge-2": 50.0, "rouge-l": 50.0}
    assert mean_scores([]) == {"bleu-4": 0.0, "rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
