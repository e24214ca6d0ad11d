"""Padding-free packing (``data.packing``): the rows of a micro-batch are concatenated into one row of batch 1, with
position ids restarting at 0 for every row, and batches are made by a token budget instead of a row count.

The attention keeps the rows apart; nothing here re-implements it. transformers does it from the position ids:
FlashAttention 2/3 run their varlen kernels (the collator also hands them the ``cu_seq_lens_*`` boundaries, so no
per-layer search happens), and ``sdpa`` / ``eager`` / ``flex_attention`` get a block-causal mask from
``transformers.masking_utils`` (``find_packed_sequence_indices``) because the packed batch carries no attention
mask. The labels of each row's first token are ``IGNORE_INDEX``, so no row is trained to predict its first token
from the row before it (transformers' ``DataCollatorWithFlattening`` builds the batch).

The token-budget batch sampler visits every row once per epoch, shuffled with the run's seed and the epoch, and
cuts the shuffled rows into exactly as many batches as the padded run has (``ceil(rows / batch size)``) at the
token offsets closest to equal shares: the same rows and, on average, the same tokens per optimizer step as the
padded run. Its batches depend only on (seed, epoch), so a resumed run skips exactly the batches it consumed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.context import IGNORE_INDEX
from ft_core.api.errors import FtCoreError
from ft_core.engine.config.rules import can_pack
from ft_core.engine.models.attention import is_varlen, keeps_rows_apart
from ft_core.engine.models.loader import base_model

#: ``auto`` packs with a dense-mask attention (sdpa) only while every packed batch stays within this many tokens:
#: the block-causal mask holds the square of it (16k tokens: 268M entries), where a varlen kernel needs none.
DENSE_MASK_TOKENS = 16384
#: Dataset columns the packing collator reads or may drop (anything else, e.g. pixel values, is not packable).
PACKABLE_COLUMNS = frozenset({"input_ids", "labels", "attention_mask"})
#: Functions of ``transformers.masking_utils`` whose import marks model code that honours packed position ids.
_MASK_FUNCTIONS = ("create_causal_mask", "create_sliding_window_causal_mask", "create_masks_for_generate")


# ------------------------------------------------------------------------------------------------ the collator
def packing_collator(varlen_kwargs: bool = False) -> Any:
    """A collator concatenating a batch's rows into one row of batch 1: ``input_ids``, ``labels`` (the first
    token of each row ``IGNORE_INDEX``), ``position_ids`` restarting at 0 per row, no attention mask; with
    ``varlen_kwargs`` also the ``cu_seq_lens_q/k`` and ``max_length_q/k`` FlashAttention uses."""
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(
        return_position_ids=True, separator_id=IGNORE_INDEX, return_flash_attn_kwargs=varlen_kwargs
    )


# ------------------------------------------------------------------------------------------------ the sampler
class TokenBudgetBatchSampler:
    """Batches of row indices by a token budget, every row once per epoch.

    The rows are shuffled with ``seed + epoch`` and cut into ``num_batches`` consecutive batches at the token
    offsets closest to equal shares of the epoch's tokens (each batch holds at least one row). ``num_batches`` is
    ``ceil(rows / batch_size)`` — what a padded run of ``batch_size`` rows has — or, with ``budget`` tokens per
    batch, ``ceil(tokens / budget)``. The batches depend only on (seed, epoch): resuming skips exactly the
    consumed ones. ``set_epoch`` is called by the Trainer (and by :class:`PackingTrainerMixin`) each epoch.
    """

    drop_last = False

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        batch_size: int = 1,
        budget: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not lengths:
            raise ValueError("TokenBudgetBatchSampler needs at least one row")
        self.lengths = [int(n) for n in lengths]
        self.total = sum(self.lengths)
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        rows = len(self.lengths)
        wanted = math.ceil(self.total / budget) if budget else math.ceil(rows / max(batch_size, 1))
        self.num_batches = max(1, min(rows, wanted))
        #: Mean tokens per batch (what each optimizer micro-step sees on average).
        self.mean_tokens = self.total / self.num_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def order(self) -> list[int]:
        """This epoch's row order."""
        if not self.shuffle:
            return list(range(len(self.lengths)))
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.lengths), generator=generator).tolist()

    def batches(self) -> list[list[int]]:
        """This epoch's batches."""
        order = self.order()
        rows, count = len(order), self.num_batches
        ends, running = [], 0  # token offset after each row, in visiting order
        for index in order:
            running += self.lengths[index]
            ends.append(running)
        cuts, previous = [], 0
        for k in range(1, count):
            target = k * self.total / count
            cut = _closest_cut(ends, target)
            cut = min(max(cut, previous + 1), rows - (count - k))  # non-empty batches, room for the rest
            cuts.append(cut)
            previous = cut
        bounds = [0, *cuts, rows]
        return [order[lo:hi] for lo, hi in pairwise(bounds)]

    def largest_batch(self) -> int:
        """Tokens of the largest batch of this epoch."""
        return max(sum(self.lengths[i] for i in batch) for batch in self.batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()


def _closest_cut(ends: list[int], target: float) -> int:
    """The number of leading rows whose total token count is closest to ``target``."""
    from bisect import bisect_left

    i = bisect_left(ends, target)  # ends[i] is the first offset >= target
    if i >= len(ends):
        return len(ends)
    before = ends[i - 1] if i > 0 else 0
    return i if target - before <= ends[i] - target else i + 1


def column_lengths(dataset: Any, column: str) -> list[int]:
    """The length of each row's ``column`` (a list column), read from the Arrow column when there is one."""
    table = getattr(getattr(dataset, "data", None), "table", None)
    if table is not None and column in table.column_names:
        import pyarrow.compute as pc

        return [int(n) for n in pc.list_value_length(table.column(column)).to_pylist()]
    return [len(row[column]) for row in dataset]


def row_lengths(dataset: Any) -> list[int]:
    """Token count of each row (``input_ids``)."""
    return column_lengths(dataset, "input_ids")


#: The answer columns of pre-tokenized preference / unpaired rows: each is put through the model after the prompt.
ANSWER_COLUMNS = ("chosen_ids", "rejected_ids", "completion_ids")


def sequence_lengths(dataset: Any) -> list[int]:
    """The longest sequence each row puts through the model: ``input_ids`` for causal-LM rows, the prompt
    (``prompt_ids``, when the rows keep it apart) plus the longest of its answers for preference and unpaired rows
    (``chosen_ids`` / ``rejected_ids``, ``completion_ids``); empty for rows of another shape."""
    columns = list(getattr(dataset, "column_names", None) or [])
    if "input_ids" in columns:
        return row_lengths(dataset)
    answers = [column_lengths(dataset, c) for c in ANSWER_COLUMNS if c in columns]
    if not answers:
        return []
    longest = [max(lengths) for lengths in zip(*answers, strict=True)]
    if "prompt_ids" not in columns:
        return longest
    return [p + a for p, a in zip(column_lengths(dataset, "prompt_ids"), longest, strict=True)]


# ------------------------------------------------------------------------------------------------ the trainer
class PackingTrainerMixin:
    """Mixed in front of the trainer class of a packed run: the training dataloader draws its batches from
    :attr:`ft_batch_sampler` (a :class:`TokenBudgetBatchSampler`); ``accelerate`` shards them across processes."""

    ft_batch_sampler: TokenBudgetBatchSampler

    def get_train_dataloader(self) -> Any:
        from functools import partial

        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        args = self.args  # type: ignore[attr-defined]
        if self.train_dataset is None:  # type: ignore[attr-defined]
            raise ValueError("Trainer: training requires a train_dataset.")
        params: dict[str, Any] = {
            "batch_sampler": self.ft_batch_sampler,
            "collate_fn": self.data_collator,  # type: ignore[attr-defined]
            "num_workers": args.dataloader_num_workers,
            "pin_memory": args.dataloader_pin_memory,
            "persistent_workers": args.dataloader_persistent_workers,
            "worker_init_fn": partial(
                seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index
            ),
        }
        if args.dataloader_num_workers > 0:
            params["prefetch_factor"] = args.dataloader_prefetch_factor
            params["multiprocessing_context"] = args.dataloader_multiprocessing_context
        loader = DataLoader(self.train_dataset, **params)  # type: ignore[attr-defined]
        return self.accelerator.prepare(loader)  # type: ignore[attr-defined]

    def _run_epoch(self, model: Any, epoch: int, *args: Any, **kwargs: Any) -> Any:
        # The Trainer's own set_epoch calls do not reach a batch sampler behind accelerate's skip-and-shard
        # wrappers on every path (a resumed multi-process run); the epoch decides the order, so set it here.
        self.ft_batch_sampler.set_epoch(epoch)
        return super()._run_epoch(model, epoch, *args, **kwargs)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ the decision
@dataclass
class PackingPlan:
    """How a run packs: the collator, the batch sampler and the trainer mixin to use."""

    attention: str
    collator: Any
    sampler: TokenBudgetBatchSampler
    #: Padded micro-batches merged into each packed one (1: none; else the run's gradient accumulation).
    merged_accumulation: int = 1
    mixin: type = PackingTrainerMixin

    def manifest(self) -> dict[str, Any]:
        """The run manifest's record of it."""
        return {
            "attention": self.attention,
            "batches_per_epoch": self.sampler.num_batches,
            "tokens_per_epoch": self.sampler.total,
            "mean_tokens_per_batch": round(self.sampler.mean_tokens, 1),
            "merged_accumulation_steps": self.merged_accumulation,
        }

    def describe(self, batch_size: int) -> str:
        kind = "varlen kernel" if is_varlen(self.attention) else "block-causal mask"
        padded = f"{batch_size} rows per batch"
        if self.merged_accumulation > 1:
            padded = f"{self.merged_accumulation} micro-batches of {padded} merged into one step"
        return (
            f"packing: on ({self.attention}, {kind}): {self.sampler.num_batches} batches per epoch of "
            f"~{self.sampler.mean_tokens:.0f} tokens (padded: {padded}), no padding"
        )


def _model_problem(model: Any) -> str | None:
    """Why ``model`` cannot be packed, or ``None``."""
    base = base_model(model)
    config = getattr(base, "config", None)
    if config is not None and (
        getattr(config, "vision_config", None) is not None or hasattr(config, "text_config")
    ):
        return (
            f"{type(base).__name__} is a multi-modal model (its position ids are not plain per-row positions)"
        )
    module = sys.modules.get(type(base).__module__)
    if module is None or not any(hasattr(module, name) for name in _MASK_FUNCTIONS):
        return (
            f"{type(base).__name__} ({type(base).__module__}) does not build its attention mask with "
            "transformers.masking_utils, so packed rows would attend to each other"
        )
    return None


def plan_packing(
    config: RunConfig,
    stage: Any,
    model: Any,
    train_dataset: Any,
    uses_gpu: bool,
    say: Callable[[str], None],
    merge_accumulation: int = 1,
    merged_fits: Callable[[int], bool] | None = None,
) -> PackingPlan | PaddedBatchesPlan | None:
    """Decide whether this run packs (``data.packing``), say so in one line, and return the plan (``None``: the
    stage's own padded batches). ``data.packing: true`` with something that cannot pack is an error.

    A stage with ``packs_padded_batches`` keeps its batches and gets a :class:`PaddedBatchesPlan` (padding-free
    forward passes, :mod:`ft_core.engine.training.padding_free`); ``auto`` chooses it on GPU runs with a varlen
    attention kernel. ``merge_accumulation`` > 1 makes each packed micro-batch hold that many padded
    micro-batches' rows (the caller then runs one micro-step per optimizer step: the same rows and tokens per
    step, fewer, larger micro-steps), provided ``merged_fits`` (if given) accepts the largest merged micro-batch's
    token count; else the micro-batches stay as they are, with one log line saying why. A packed GPU run with
    ``model.attn_implementation: auto`` on ``sdpa`` switches to ``torch_varlen`` where it can run
    (:func:`switch_to_varlen`)."""
    setting = config.data.packing
    if setting is False or not can_pack(stage) or train_dataset is None:
        return None
    if getattr(config.data, "streaming", False):  # partial configs (tests, tools) may lack the key
        say("packing: off (data.streaming: packing needs every row's length up front)")
        return None
    forced = setting is True
    if not forced and not uses_gpu:
        say("packing: off (auto packs on GPU runs only; data.packing: true packs here too)")
        return None
    attention = getattr(getattr(base_model(model), "config", None), "_attn_implementation", None) or "sdpa"

    def off(reason: str) -> None:
        if forced:
            raise FtCoreError(f"data.packing: true, but {reason}; set data.packing: auto or false")
        say(f"packing: off ({reason})")

    if not keeps_rows_apart(attention):
        off(f"the attention implementation {attention!r} cannot keep packed rows apart")
        return None
    problem = _model_problem(model)
    if problem:
        off(problem)
        return None
    if not getattr(stage, "supports_packing", False):
        return _plan_padded_batches(config, model, attention, uses_gpu, forced, say)
    columns = set(getattr(train_dataset, "column_names", None) or [])
    if "input_ids" not in columns or not columns <= PACKABLE_COLUMNS:
        off(f"the rows hold columns it cannot concatenate ({', '.join(sorted(columns - PACKABLE_COLUMNS))})")
        return None
    training = config.training
    lengths = row_lengths(train_dataset)

    def sampler_of(rows_per_batch: int) -> TokenBudgetBatchSampler:
        return TokenBudgetBatchSampler(
            lengths, batch_size=rows_per_batch, budget=config.data.packing_tokens, seed=training.seed
        )

    sampler = sampler_of(training.per_device_train_batch_size * merge_accumulation)
    if (
        merge_accumulation > 1
        and merged_fits is not None
        and not merged_fits(largest := sampler.largest_batch())
    ):
        say(
            f"packing: {merge_accumulation} accumulation steps not merged (a merged micro-batch of up to {largest} "
            "tokens would not fit the GPU with this checkpointing)"
        )
        merge_accumulation, sampler = 1, sampler_of(training.per_device_train_batch_size)
    attention = _auto_varlen(config, model, attention, uses_gpu, say)
    if not forced:
        if attention == "eager":
            say("packing: off (auto does not pack with eager attention; data.packing: true packs anyway)")
            return None
        largest = sampler.largest_batch()
        if not is_varlen(attention) and largest > DENSE_MASK_TOKENS:
            say(
                f"packing: off ({attention} keeps packed rows apart with a dense mask over each packed batch, and "
                f"the largest would hold {largest} tokens (auto packs up to {DENSE_MASK_TOKENS}): lower "
                "data.packing_tokens, use model.attn_implementation: flash_attention_2, or data.packing: true)"
            )
            return None
    plan = PackingPlan(
        attention, packing_collator(varlen_kwargs=is_varlen(attention)), sampler, merge_accumulation
    )
    say(plan.describe(training.per_device_train_batch_size))
    if attention == "sdpa" and uses_gpu:
        _without_cudnn_attention(say)
    return plan


@dataclass(frozen=True)
class PaddedBatchesPlan:
    """A stage keeping its own padded batches runs each forward pass padding-free with ``attention``."""

    attention: str

    def manifest(self) -> dict[str, Any]:
        """The run manifest's record of it."""
        return {"attention": self.attention, "mode": "padding-free forward passes over the stage's batches"}

    def describe(self) -> str:
        kind = "varlen kernel" if is_varlen(self.attention) else "block-causal mask"
        return (
            f"packing: on ({self.attention}, {kind}): the stage's batches keep their rows, each forward pass "
            "runs on their tokens concatenated, no padding"
        )


def _plan_padded_batches(
    config: RunConfig, model: Any, attention: str, uses_gpu: bool, forced: bool, say: Callable[[str], None]
) -> PaddedBatchesPlan | None:
    attention = _auto_varlen(config, model, attention, uses_gpu, say)
    if not forced and not is_varlen(attention):
        say(
            f"packing: off (auto runs a stage's padded batches padding-free with a varlen attention kernel only, "
            f"not {attention}'s dense mask; data.packing: true does it anyway)"
        )
        return None
    plan = PaddedBatchesPlan(attention)
    say(plan.describe())
    if attention == "sdpa" and uses_gpu:
        _without_cudnn_attention(say)
    return plan


def _auto_varlen(
    config: RunConfig, model: Any, attention: str, uses_gpu: bool, say: Callable[[str], None]
) -> str:
    """The attention a packed run uses: ``sdpa`` becomes ``torch_varlen`` (:func:`switch_to_varlen`) on GPU runs
    with ``model.attn_implementation: auto``."""
    if attention == "sdpa" and uses_gpu and config.model.attn_implementation == "auto":
        return switch_to_varlen(model, say)
    return attention


def switch_to_varlen(model: Any, say: Callable[[str], None]) -> str:
    """Switch a packed model from ``sdpa`` to ``torch_varlen`` (PyTorch's varlen flash kernel) when it can serve
    the model exactly; returns the attention the run packs with, saying which and why in one line."""
    from ft_core.engine.models import varlen_attention

    base = base_model(model)
    model_config = base.config
    parameter = next(base.parameters(), None)
    head_dim = getattr(model_config, "head_dim", None) or (
        model_config.hidden_size // model_config.num_attention_heads
        if getattr(model_config, "num_attention_heads", None)
        else None
    )
    reason = varlen_attention.unavailable_reason(getattr(parameter, "dtype", None), head_dim)
    if reason is None and not getattr(base, "_supports_flash_attn", False):
        # the row boundaries reach the attention only in model code written for flash attention's varlen path
        reason = f"{type(base).__name__} does not support flash-attention kernels"
    if reason is None and getattr(model_config, "attn_logit_softcapping", None):
        reason = "the model soft-caps its attention logits"
    if reason is None and getattr(model_config, "attention_dropout", None):
        reason = "the model uses attention dropout"
    if reason is not None:
        say(f"attention: sdpa for packed rows ({varlen_attention.NAME} unavailable: {reason})")
        return "sdpa"
    varlen_attention.register()
    base.set_attn_implementation(varlen_attention.NAME)
    say(
        f"attention: {varlen_attention.NAME} for packed rows (PyTorch's varlen flash kernel: no dense mask, no "
        "masked-out work; flash-attn is not installed)"
    )
    return varlen_attention.NAME


def match_attention(model: Any, attention: str) -> None:
    """Give ``model`` (another model of the run, e.g. a frozen reference whose passes are packed too) the varlen
    attention :func:`switch_to_varlen` gave the policy."""
    from ft_core.engine.models import varlen_attention

    base = base_model(model)
    if attention == varlen_attention.NAME and base.config._attn_implementation != attention:
        base.set_attn_implementation(attention)


def _without_cudnn_attention(say: Callable[[str], None]) -> None:
    """Packed batches change length every step, and cuDNN's attention builds an execution plan per new shape (on
    an H200 with Llama-3-8B: ~2 ms of CPU time per layer and call, the GPU idle meanwhile; the profile in
    docs/performance.md). PyTorch's flash and memory-efficient SDPA kernels need no such plans."""
    import torch

    if torch.backends.cuda.cudnn_sdp_enabled():
        torch.backends.cuda.enable_cudnn_sdp(False)
        say("attention: sdpa without the cuDNN backend (packed batches change shape every step)")
