"""Preference pairs as the run's chat template renders them, cut to ``data.cutoff_len`` as LLaMA-Factory does it:
the shared encoding of the preference stages (dpo, orpo, cpo / simpo; kto uses the cutting rules). Standard library
and the public API only.
"""

from __future__ import annotations

from typing import Any

from ft_core.api.context import Encoder
from ft_core.api.conversation import Conversation, Message
from ft_core.api.errors import DataError


def fit_lengths(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """How many prompt and answer tokens to keep so that ``prompt + answer <= cutoff_len`` (LLaMA-Factory's
    ``infer_seqlen``, as the dpo stage does it): a short answer is kept whole and the prompt cut; else a short prompt
    is kept whole and the answer cut; else both are cut in proportion to their lengths."""
    if target_len * 2 < cutoff_len:
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target_len = cutoff_len - source_len
    else:
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    new_source_len = min(max(cutoff_len - new_target_len, 0), source_len)
    return new_source_len, new_target_len


def keep_prompt_end(prompt_ids: list[int], length: int, bos_token_id: int | None) -> list[int]:
    """The last ``length`` tokens of the prompt (the question and the generation prompt), with a leading BOS
    kept in front when the prompt starts with one."""
    if len(prompt_ids) <= length:
        return list(prompt_ids)
    if length > 1 and bos_token_id is not None and prompt_ids[0] == bos_token_id:
        return [prompt_ids[0], *prompt_ids[len(prompt_ids) - length + 1 :]]
    return list(prompt_ids[len(prompt_ids) - length :])


def fit_pair(
    prompt_ids: list[int],
    chosen_ids: list[int],
    rejected_ids: list[int],
    cutoff_len: int,
    max_prompt_len: int | None = None,
    bos_token_id: int | None = None,
) -> tuple[list[int], list[int], list[int]]:
    """Cut a preference pair so that prompt + either answer fits ``cutoff_len``: the prompt keeps its end
    (:func:`keep_prompt_end`), the answers keep their start; both answers get the same budget."""
    if max_prompt_len is not None:
        prompt_ids = keep_prompt_end(prompt_ids, max_prompt_len, bos_token_id)
    source_len, target_len = fit_lengths(len(prompt_ids), max(len(chosen_ids), len(rejected_ids)), cutoff_len)
    return (
        keep_prompt_end(prompt_ids, source_len, bos_token_id) if source_len else [],
        list(chosen_ids[:target_len]),
        list(rejected_ids[:target_len]),
    )


def encode_pair(
    conversation: Conversation, encoder: Encoder, stage: str
) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, chosen_ids, rejected_ids)`` of a preference sample, exactly as the chat template renders
    them (untruncated); a DataError naming the row when the sample is no usable pair."""
    rejected = conversation.extra.get("rejected")
    where = conversation.source or "a preference sample"
    if not isinstance(rejected, Message):
        raise DataError(
            f"{where}: no rejected answer; the {stage} stage needs preference data (ranking: true with chosen / "
            "rejected columns in dataset_info.json)"
        )
    last = conversation.messages[-1] if conversation.messages else None
    if last is None or last.role != "assistant" or not (last.content.strip() or last.tool_calls):
        raise DataError(f"{where}: empty chosen answer")
    if not (rejected.content.strip() or rejected.tool_calls):
        raise DataError(f"{where}: empty rejected answer")
    prompt_ids, chosen_ids = encoder.encode_completion(conversation)
    rejected_prompt_ids, rejected_ids = encoder.encode_completion(conversation, rejected)
    if rejected_prompt_ids != prompt_ids:  # the prompt is the same messages; anything else is an encoder bug
        raise DataError(f"{where}: the prompt encodes differently before the chosen and the rejected answer")
    return list(prompt_ids), list(chosen_ids), list(rejected_ids)


def preference_rows(
    samples: list[Any], encoder: Encoder, stage: str, max_prompt_len: int | None
) -> list[dict[str, Any]]:
    """The ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rows of preference samples, fitted into the encoder's
    ``cutoff_len``; pairs left without a difference (identical answers, nothing after the cut) are dropped."""
    bos_token_id = getattr(encoder.tokenizer, "bos_token_id", None)
    rows = []
    for conversation in samples:
        prompt_ids, chosen_ids, rejected_ids = encode_pair(conversation, encoder, stage)
        prompt_ids, chosen_ids, rejected_ids = fit_pair(
            prompt_ids, chosen_ids, rejected_ids, encoder.cutoff_len, max_prompt_len, bos_token_id
        )
        if not chosen_ids or not rejected_ids or chosen_ids == rejected_ids:
            continue
        rows.append({"prompt_ids": prompt_ids, "chosen_ids": chosen_ids, "rejected_ids": rejected_ids})
    return rows
