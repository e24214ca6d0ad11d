"""Conformance check for training stages (``ft_register_stages``): the contract of ``preprocess``.

Use it from a plugin's tests::

    from ft_core.testing import make_encoder
    from ft_core.testing.conformance_stages import check_stage

    def test_conformance(tiny_tokenizer):
        check_stage(MyStage(), MyOptions(), make_encoder(tiny_tokenizer, cutoff_len=64), samples)
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from ft_core.api.components import ModelRole, TrainingStage
from ft_core.api.context import Encoder
from ft_core.api.datasets import DATA_KINDS


def check_stage(
    stage: TrainingStage[Any],
    options: Any,
    encoder: Encoder,
    samples: list[Any],
    *,
    chunk_invariant: bool = True,
) -> list[dict[str, Any]]:
    """Check a stage's declarations and ``preprocess`` on ``samples``; returns the rows.

    1. ``data_kind`` is one of :data:`~ft_core.api.datasets.DATA_KINDS`; ``roles(options)`` gives
       :class:`~ft_core.api.components.ModelRole` s with distinct names, among them a trainable ``policy``, and
       ``next_steps`` gives lines for a run folder.
    2. The stage, its options and the encoder pickle (preprocessing runs in worker processes).
    3. ``preprocess`` gives a sequence of dicts with the same keys; every ``*_ids`` / ``*labels`` / ``*mask``
       column holds lists of ints; a ``labels`` list is as long as its ``input_ids``; rows fit ``cutoff_len``.
    4. It is deterministic and, with ``chunk_invariant``, preprocessing two halves gives the rows of the whole
       (what parallel workers rely on; a stage that packs across rows may pass ``chunk_invariant=False``, unless it
       declares ``rows_per_sample``).
    """
    assert isinstance(stage, TrainingStage), f"{type(stage).__name__} must subclass TrainingStage"
    assert stage.data_kind in DATA_KINDS, f"data_kind {stage.data_kind!r} is not one of {DATA_KINDS}"
    roles = stage.roles(options)
    assert roles and all(isinstance(role, ModelRole) for role in roles), (
        "roles() must return ModelRole instances"
    )
    names = [role.name for role in roles]
    assert len(names) == len(set(names)), f"roles() names a role twice: {names}"
    policy = next((role for role in roles if role.name == "policy"), None)
    assert policy is not None and policy.trainable, (
        "roles() must include a trainable 'policy' (the model that trains)"
    )
    lines = stage.next_steps("runs/x", options)
    assert isinstance(lines, list) and all(isinstance(line, str) for line in lines), (
        "next_steps must give lines"
    )
    for what, value in (("the stage", stage), ("its options", options), ("the encoder", encoder)):
        try:
            pickle.dumps(value)
        except Exception as exc:  # any pickling failure is the finding
            raise AssertionError(f"{what} cannot be pickled for worker processes: {exc}") from exc
    made = stage.preprocess(list(samples), encoder, options)
    assert isinstance(made, Sequence) and made, "preprocess returned no rows"
    rows = list(made)
    keys = set(rows[0])
    for number, row in enumerate(rows):
        assert isinstance(row, dict) and set(row) == keys, (
            f"row {number} has keys {sorted(row)}, not {sorted(keys)}"
        )
        for key, value in row.items():
            if key.endswith(("_ids", "labels", "mask")):
                assert isinstance(value, list) and all(isinstance(v, int) for v in value), (
                    f"row {number}: {key} must be a list of ints"
                )
                assert len(value) <= encoder.cutoff_len, f"row {number}: {key} is longer than cutoff_len"
        if "labels" in row and "input_ids" in row:
            assert len(row["labels"]) == len(row["input_ids"]), (
                f"row {number}: labels and input_ids differ in length"
            )
    assert list(stage.preprocess(list(samples), encoder, options)) == rows, "preprocess is not deterministic"
    if chunk_invariant or stage.rows_per_sample:
        half = len(samples) // 2
        parts = [
            *stage.preprocess(list(samples[:half]), encoder, options),
            *stage.preprocess(list(samples[half:]), encoder, options),
        ]
        assert parts == rows, "preprocessing two halves does not give the rows of the whole"
    return rows
