"""Cutting a supervised row to ``data.cutoff_len`` turn by turn, by LLaMA-Factory's rule.

A rendered conversation is a sequence of turns, each a *source* (the text before an assistant answer: system prompt,
user and tool turns, the generation prompt) and a *target* (the answer and its end marker). The turns are visited in
order (last turn first with ``mask_history``, so the trained turn survives); each gets what remains of the budget,
split between its source and target by :func:`infer_seqlen`; once the budget is spent the remaining turns are left
out. This keeps the start of every kept answer instead of cutting the rendered text from the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """``(source, target)`` lengths kept of a turn with ``cutoff_len`` tokens of budget left.

    A short target (under half the budget) is kept whole and the source gets the rest; else a short source is kept
    whole and the target gets the rest; else both shrink in proportion to their lengths (target rounded down).
    """
    if target_len * 2 < cutoff_len:
        max_target = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target = cutoff_len - source_len
    else:
        max_target = int(cutoff_len * (target_len / (source_len + target_len)))
    target = min(max_target, target_len)
    source = min(max(cutoff_len - target, 0), source_len)
    return source, target


@dataclass(frozen=True)
class Turn:
    """Token ranges of one turn: source ``[start, answer)``, target ``[answer, end)``."""

    start: int
    answer: int
    end: int


def turns_of(answers: Sequence[tuple[int, int]], length: int) -> list[Turn]:
    """The turns of a row of ``length`` tokens whose assistant answers are the token ranges ``answers`` (in order):
    each source runs from the previous answer's end; tokens after the last answer belong to its target."""
    turns: list[Turn] = []
    start = 0
    for number, (lo, hi) in enumerate(answers):
        end = length if number == len(answers) - 1 else hi
        turns.append(Turn(start, lo, end))
        start = end
    return turns


def truncate_turns(
    input_ids: Sequence[int],
    labels: Sequence[int],
    turns: Sequence[Turn],
    cutoff_len: int,
    *,
    last_turn_first: bool = False,
    reserved: int = 0,
) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """``(input_ids, labels, kept)``: the row cut to ``cutoff_len`` turn by turn (see the module docstring).

    ``labels`` are cut along with the ids. ``last_turn_first`` (``mask_history``) spends the budget from the last
    turn backwards; ``reserved`` tokens of the budget are kept for something appended afterwards (an EOS).
    ``kept`` lists the ranges of the original row that were kept, in order.
    """
    if len(input_ids) + reserved <= cutoff_len:  # fits: untouched (the rule would only round a token away)
        return list(input_ids), list(labels), [(0, len(input_ids))] if input_ids else []
    total = reserved
    kept: list[tuple[int, int]] = []
    for turn in reversed(turns) if last_turn_first else turns:
        if total >= cutoff_len:
            break
        source, target = infer_seqlen(turn.answer - turn.start, turn.end - turn.answer, cutoff_len - total)
        total += source + target
        pieces = [(turn.start, turn.start + source), (turn.answer, turn.answer + target)]
        kept = [*pieces, *kept] if last_turn_first else [*kept, *pieces]
    ids = [token for lo, hi in kept for token in input_ids[lo:hi]]
    cut_labels = [label for lo, hi in kept for label in labels[lo:hi]]
    return ids, cut_labels, [(lo, hi) for lo, hi in kept if hi > lo]
