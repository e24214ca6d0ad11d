"""``data.cutoff_len`` in SFT cuts turn by turn by LLaMA-Factory's rule (ft_core.engine.templates.truncation).

The expectations are worked by hand from the rule of LLaMA-Factory's ``infer_seqlen`` and its supervised processor:
turns are visited in order (last first with ``mask_history``), each gets the budget left, split between its source
(prompt) and target (answer); visiting stops once the budget is spent.
"""

from __future__ import annotations

from typing import Any

import pytest

from ft_core.api.context import IGNORE_INDEX
from ft_core.api.conversation import Conversation, Message
from ft_core.engine.templates.render import encode_conversation, render_conversation
from ft_core.engine.templates.truncation import Turn, infer_seqlen, truncate_turns, turns_of
from ft_core.testing.tiny import CHATML_JINJA


@pytest.mark.parametrize(
    ("source", "target", "budget", "expected"),
    [
        (10, 3, 8, (5, 3)),  # short target (3*2 < 8): kept whole, the source gets the other 5
        (3, 10, 8, (3, 5)),  # short source (3*2 < 8): kept whole, the target gets the other 5
        (10, 30, 20, (5, 15)),  # both long: target int(20 * 30/40) = 15, source the other 5
        (10, 10, 7, (4, 3)),  # target int(7 * 10/20) = int(3.5) = 3, source 4
        (4, 4, 0, (0, 0)),
    ],
)
def test_infer_seqlen_follows_the_rule(
    source: int, target: int, budget: int, expected: tuple[int, int]
) -> None:
    assert infer_seqlen(source, target, budget) == expected


#: Two turns over tokens 0..29: source [0, 10) target [10, 14); source [14, 20) target [20, 30).
TURNS = [Turn(0, 10, 14), Turn(14, 20, 30)]
IDS = list(range(30))


def test_in_order_the_last_turn_gets_what_is_left() -> None:
    # turn 1, budget 20: target 4 (8 < 20) whole, source min(16, 10) = 10 -> 14 used
    # turn 2, budget 6: 10*2 >= 6 and 6*2 >= 6 -> target int(6 * 10/16) = 3, source min(3, 6) = 3
    ids, labels, kept = truncate_turns(IDS, IDS, TURNS, 20)
    assert ids == [*range(14), 14, 15, 16, 20, 21, 22]
    assert labels == ids
    assert kept == [(0, 10), (10, 14), (14, 17), (20, 23)]


def test_mask_history_spends_the_budget_on_the_last_turn_first() -> None:
    # turn 2, budget 20: 10*2 = 20 is not < 20; 6*2 < 20 -> target 20 - 6 = 14 -> 10 whole, source 6 -> 16 used
    # turn 1, budget 4: target int(4 * 4/14) = 1, source min(3, 10) = 3
    ids, _, _ = truncate_turns(IDS, IDS, TURNS, 20, last_turn_first=True)
    assert ids == [0, 1, 2, 10, *range(14, 30)]


def test_spent_budget_drops_the_remaining_turns_and_rows_that_fit_stay_whole() -> None:
    ids, _, _ = truncate_turns(IDS, IDS, TURNS, 14)  # turn 1 takes all 14
    assert ids == list(range(14))
    assert truncate_turns(IDS, IDS, TURNS, 30)[0] == IDS
    # one token reserved (an EOS appended afterwards): turn 1 gets budget 13 -> target 4, source 9
    assert truncate_turns(IDS, IDS, TURNS, 14, reserved=1)[0] == [*range(9), 10, 11, 12, 13]


def test_turns_of_gives_each_source_from_the_previous_answer_end() -> None:
    assert turns_of([(10, 14), (20, 28)], 30) == [Turn(0, 10, 14), Turn(14, 20, 30)]


def long_chat() -> Conversation:
    first = "Tell me everything about the history of Rome, " * 6
    return Conversation(
        [
            Message("user", first),
            Message("assistant", "Rome was founded, grew, ruled, declined and fell. " * 4),
            Message("user", "Now in one word?"),
            Message("assistant", "Empire."),
        ],
        source="chat.json row 1",
    )


def _lengths(tokenizer: Any) -> tuple[list[int], list[tuple[int, int]]]:
    rendered = render_conversation(tokenizer, CHATML_JINJA, long_chat())
    return rendered.input_ids, [rendered.token_range(span) for span in rendered.spans]


def test_mask_history_keeps_the_only_trained_turn(tiny_tokenizer: Any) -> None:
    """Cutting from the end lost the last (only trained) turn of a long conversation; now it survives whole and the
    budget left goes to the start of the first turn."""
    ids, ((lo1, hi1), (lo2, _)) = _lengths(tiny_tokenizer)
    source2, target2 = lo2 - hi1, len(ids) - lo2
    cutoff = source2 + target2 + 6
    row = encode_conversation(tiny_tokenizer, CHATML_JINJA, long_chat(), cutoff_len=cutoff, mask_history=True)
    assert row is not None
    # by the rule: turn 2 fits whole (its target is short); turn 1 gets 6: both long -> target int(6 * t/(s + t))
    budget_left = 6
    target1 = int(budget_left * ((hi1 - lo1) / (lo1 + hi1 - lo1)))
    source1 = budget_left - target1
    expected = ids[:source1] + ids[lo1 : lo1 + target1] + ids[hi1:]
    assert row["input_ids"] == expected
    trained = tiny_tokenizer.decode([label for label in row["labels"] if label != IGNORE_INDEX])
    assert trained == "Empire.<|im_end|>\n"


def test_a_long_prompt_no_longer_crowds_out_its_answer(tiny_tokenizer: Any) -> None:
    """A budget shorter than the first prompt: cutting from the end kept prompt tokens only (no row); by the rule
    prompt and answer share it in proportion to their lengths."""
    ids, ((lo1, hi1), _) = _lengths(tiny_tokenizer)
    cutoff = 100
    assert lo1 > cutoff and (hi1 - lo1) * 2 >= cutoff  # both long
    row = encode_conversation(tiny_tokenizer, CHATML_JINJA, long_chat(), cutoff_len=cutoff)
    assert row is not None
    target = int(cutoff * ((hi1 - lo1) / hi1))
    assert row["input_ids"] == ids[: cutoff - target] + ids[lo1 : lo1 + target]
    assert row["labels"][cutoff - target :] == ids[lo1 : lo1 + target]
    assert set(row["labels"][: cutoff - target]) == {IGNORE_INDEX}
