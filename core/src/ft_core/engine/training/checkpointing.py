"""Memory-aware activation ("gradient") checkpointing: ``training.gradient_checkpointing: auto | true | false |
offload``.

``auto`` estimates, from the model config alone (no weights loaded), what one optimizer micro-step needs on the GPU
— weights, gradients and optimizer state of the trained parameters, and the activations the backward pass keeps
for the largest micro-batch (:func:`micro_batch`: ``per_device_train_batch_size`` × the longest prepared row, or
a packed batch's bound; ``× cutoff_len`` before the data is known) — and compares it with the free GPU memory
(``torch.cuda.mem_get_info``), or ``training.memory_budget`` when that is smaller, less a safety margin:

- everything fits with every activation kept → **off** (the fastest: nothing is recomputed);
- it fits when only some decoder layers are checkpointed → **selective**: every n-th layer (the largest n that
  fits; transformers' ``every_n_layers``);
- it fits with every layer checkpointed → **on**;
- it does not → **offload**: every layer checkpointed and the checkpointed layer inputs kept in pinned CPU memory
  (transformers' ``offload``, i.e. ``torch.autograd.graph.save_on_cpu`` around each checkpoint).

An adapter (LoRA) does not shrink the activations: gradients still flow back through every frozen base layer, so
the base model's activations are kept as in full fine-tuning; only gradients and optimizer state are small.

On the CPU ``auto`` is **off** (as before this option existed). ``true``, ``false`` and ``offload`` are used as
given. Reentrant vs non-reentrant ``torch.utils.checkpoint``: reentrant when an adapter trains (a profile against
LLaMA-Factory, which uses it, found it faster with LoRA; correct because core makes the input embeddings' output
require gradients, which reentrant checkpoints need to pass gradients into the layers), non-reentrant for full
fine-tuning; ``gradient_checkpointing_reentrant`` overrides. Offloading works with both: each checkpoint saves its layer inputs for the recompute through
``save_on_cpu``.

Imports nothing heavy at module level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ft_core.api.components import has_fused_loss
from ft_core.engine.training.batch_checkpointing import BatchCosts
from ft_core.engine.training.memory_budget import GIB, budget_bytes

#: Share of the free GPU memory the estimate may fill (the rest absorbs allocator fragmentation, temporary
#: buffers of kernels and the estimate's own error).
SAFETY = 0.85
#: Fixed reserve on top of the margin (CUDA context of the process, workspace of cuBLAS / attention kernels).
RESERVE_BYTES = 1 * GIB
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _dtype_bytes(dtype: Any) -> int:
    """Bytes per element of ``dtype`` (a ``torch.dtype`` or its name); 2 when unknown."""
    return _DTYPE_BYTES.get(str(dtype).replace("torch.", ""), 2)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training micro-step needs on the GPU, from the model shape and the micro-batch."""

    weights: float
    gradients: float
    optimizer: float
    #: Activations of one decoder layer for the whole micro-batch, kept when the layer is not checkpointed.
    layer_activations: float
    #: What a checkpointed layer keeps: its input hidden states.
    layer_input: float
    #: Logits and the loss's fp32 copies (zero with a fused linear cross-entropy such as Liger's).
    logits: float
    layers: int
    tokens: int

    @property
    def states(self) -> float:
        """Weights, gradients and optimizer state."""
        return self.weights + self.gradients + self.optimizer

    def activations(self, every_n_layers: int | None, offload: bool = False) -> float:
        """Activation bytes with no checkpointing (``None``) or with every n-th layer checkpointed."""
        if every_n_layers is None:
            return self.layers * self.layer_activations + self.logits
        checkpointed = math.ceil(self.layers / every_n_layers)
        kept = (self.layers - checkpointed) * self.layer_activations
        inputs = 0.0 if offload else checkpointed * self.layer_input
        # The backward pass recomputes one checkpointed layer at a time. With every layer checkpointed its
        # activations come on top of the inputs; with some layers kept, the kept layer after it has been freed by
        # then, so the peak stays at the start of the backward pass.
        recomputed = self.layer_activations if every_n_layers == 1 else 0.0
        return kept + inputs + recomputed + self.logits


@dataclass(frozen=True)
class CheckpointingPlan:
    """What to do: ``mode`` is ``off``, ``selective``, ``on`` or ``offload``."""

    mode: str
    reentrant: bool = False
    every_n_layers: int = 1
    reason: str = ""
    #: The numbers the decision was made on (GiB), for the log line and the manifest.
    numbers: dict[str, float] = field(default_factory=dict)
    #: ``auto`` on a GPU when the largest micro-batch needs checkpointing: what smaller forward passes cost, so
    #: that each is checkpointed only as much as it needs (:mod:`~ft_core.engine.training.batch_checkpointing`).
    per_batch: BatchCosts | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def offload(self) -> bool:
        return self.mode == "offload"

    def kwargs(self) -> dict[str, Any] | None:
        """``activation_checkpointing_kwargs`` of ``TrainingArguments`` / ``activation_checkpointing_enable``:
        ``use_reentrant`` for ``torch.utils.checkpoint``, ``every_n_layers`` and ``offload`` for transformers."""
        if not self.enabled:
            return None
        kwargs: dict[str, Any] = {"use_reentrant": self.reentrant}
        if self.every_n_layers > 1:
            kwargs["every_n_layers"] = self.every_n_layers
        if self.offload:
            kwargs["offload"] = True
        return kwargs

    def log_line(self) -> str:
        what = {
            "off": "off",
            "on": "on, every layer",
            "selective": f"on, every {self.every_n_layers} layers",
            "offload": "on, every layer, inputs offloaded to CPU",
        }[self.mode]
        style = f", {'reentrant' if self.reentrant else 'non-reentrant'}" if self.enabled else ""
        numbers = ", ".join(f"{k} {v:.2f} GiB" for k, v in self.numbers.items())
        line = f"gradient checkpointing: {what}{style} ({self.reason}{'; ' + numbers if numbers else ''})"
        if self.per_batch is not None:
            limits = ", ".join(
                f"{name} up to {tokens:,}" for name, tokens in self.per_batch.manifest().items()
            )
            line += f"; smaller forward passes checkpoint less (tokens: {limits})"
        return line

    def manifest(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "reentrant": self.reentrant if self.enabled else None,
            "every_n_layers": self.every_n_layers if self.mode == "selective" else None,
            "reason": self.reason,
            "estimate_gib": {k: round(v, 3) for k, v in self.numbers.items()},
            "per_forward_pass_tokens": self.per_batch.manifest() if self.per_batch is not None else None,
        }


def _int(config: Any, *names: str, default: int = 0) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def hidden_bytes_per_token(model: Any) -> int:
    """Bytes of one token's hidden state in ``model`` (hidden size x the element size of its dtype): what a
    checkpointed layer keeps per token."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return _int(config, "hidden_size", "n_embd", "d_model") * _dtype_bytes(getattr(model, "dtype", None))


def estimate_memory(
    model_config: Any,
    *,
    batch_size: int,
    seq_len: int,
    dtype_bytes: int,
    full_training: bool,
    adapter_rank: int = 16,
    weight_bytes: float | None = None,
    fused_loss: bool = False,
    eager_attention: bool = False,
) -> MemoryEstimate:
    """Estimate a training micro-step's GPU memory for a decoder-only model of ``model_config``.

    Activations per decoder layer and token (elements kept for the backward pass, LLaMA-style block with a gated
    MLP and flash / sdpa attention): both norms' inputs and outputs (4 h), q/k/v before and after RoPE and the
    attention output (3 q + 3 kv), and gate, up, act(gate) and their product (4 i; times the experts each token
    uses for MoE). ``eager_attention`` adds the ``heads × seq²`` score and probability matrices. Logits cost
    ``vocab × (dtype + 8)`` bytes per token (the logits, their fp32 upcast and its gradient) unless the loss is
    fused. Full training keeps gradients (weights' dtype) and AdamW's two moments (fp32); an adapter trains about
    ``2 × rank × (in + out)`` parameters per linear layer, in fp32.
    """
    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    hidden = _int(text, "hidden_size", "n_embd", "d_model")
    layers = _int(text, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(text, "num_attention_heads", "n_head", default=1)
    kv_heads = _int(text, "num_key_value_heads", "num_kv_heads", default=heads)
    head_dim = _int(text, "head_dim", default=hidden // max(heads, 1))
    intermediate = _int(text, "intermediate_size", "moe_intermediate_size", "ffn_dim", default=4 * hidden)
    vocab = _int(text, "vocab_size", default=32000)
    experts = _int(text, "num_local_experts", "num_experts", "n_routed_experts", default=1)
    active_experts = _int(text, "num_experts_per_tok", "moe_topk", default=1) if experts > 1 else 1
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    tokens = batch_size * seq_len

    attention_params = hidden * q_dim + 2 * hidden * kv_dim + q_dim * hidden
    mlp_params = 3 * hidden * intermediate * experts
    embedding_params = vocab * hidden * (1 if getattr(text, "tie_word_embeddings", False) else 2)
    params = layers * (attention_params + mlp_params) + embedding_params
    weights = params * (weight_bytes if weight_bytes is not None else dtype_bytes)
    if full_training:
        gradients, optimizer = params * dtype_bytes, params * 8
    else:
        linear_dims = [(hidden, q_dim), (hidden, kv_dim), (hidden, kv_dim), (q_dim, hidden)]
        linear_dims += [(hidden, intermediate)] * 2 + [(intermediate, hidden)]
        trainable = layers * adapter_rank * sum(a + b for a, b in linear_dims)
        gradients, optimizer = (
            trainable * 4,
            trainable * 8 + trainable * 4,
        )  # fp32 grads, moments, master copy

    per_token = 4 * hidden + 3 * q_dim + 3 * kv_dim + 4 * intermediate * active_experts
    layer_activations = float(tokens * per_token * dtype_bytes)
    if eager_attention:
        layer_activations += batch_size * heads * seq_len * seq_len * (2 * dtype_bytes + 1)
    layer_input = float(tokens * hidden * dtype_bytes)
    logits = 0.0 if fused_loss else float(tokens * vocab * (dtype_bytes + 8))
    return MemoryEstimate(
        weights=float(weights),
        gradients=float(gradients),
        optimizer=float(optimizer),
        layer_activations=layer_activations,
        layer_input=layer_input,
        logits=logits,
        layers=layers,
        tokens=tokens,
    )


def decide(
    estimate: MemoryEstimate,
    free_bytes: float,
    *,
    reentrant: bool,
    memory_budget: float | None = None,
    per_batch: bool = False,
) -> CheckpointingPlan:
    """The ``auto`` decision for a GPU with ``free_bytes`` free (before the weights load), within
    ``memory_budget`` bytes when one is given (``training.memory_budget``). With ``per_batch`` (activations
    linear in the tokens: no eager attention) a plan that checkpoints also keeps what smaller forward passes cost
    (:class:`~ft_core.engine.training.batch_checkpointing.BatchCosts`)."""
    budget = usable(free_bytes, memory_budget) - estimate.states
    numbers = {"free": free_bytes / GIB}
    if memory_budget is not None:
        numbers["memory_budget"] = memory_budget / GIB
    numbers["weights+grads+optimizer"] = estimate.states / GIB
    numbers["activations"] = estimate.activations(None) / GIB
    within = (
        " within training.memory_budget" if memory_budget is not None and memory_budget < free_bytes else ""
    )
    plan = _decision(estimate, budget, reentrant, within, numbers)
    if per_batch and plan.enabled and estimate.tokens > 0 and budget > 0:
        return replace(plan, per_batch=batch_costs(estimate, budget, plan.every_n_layers))
    return plan


def _decision(
    estimate: MemoryEstimate, budget: float, reentrant: bool, within: str, numbers: dict[str, float]
) -> CheckpointingPlan:
    """The mode for the largest micro-batch (:func:`decide`)."""
    if estimate.activations(None) <= budget:
        return CheckpointingPlan("off", reason=f"the step fits without it{within}", numbers=numbers)
    for every_n in range(estimate.layers, 1, -1):  # fewest checkpointed layers first: the least recompute
        needed = estimate.activations(every_n)
        if needed <= budget:
            numbers["with checkpointing"] = needed / GIB
            return CheckpointingPlan(
                "selective",
                reentrant=reentrant,
                every_n_layers=every_n,
                reason=f"the step does not fit with every activation kept{within}",
                numbers=numbers,
            )
    needed = estimate.activations(1)
    numbers["with checkpointing"] = needed / GIB
    if needed <= budget:
        return CheckpointingPlan(
            "on",
            reentrant=reentrant,
            reason=f"only fits with every layer checkpointed{within}",
            numbers=numbers,
        )
    numbers["with offload"] = estimate.activations(1, offload=True) / GIB
    return CheckpointingPlan(
        "offload",
        reentrant=reentrant,
        reason=f"does not fit even with every layer checkpointed{within}",
        numbers=numbers,
    )


def batch_costs(estimate: MemoryEstimate, budget: float, down_to: int) -> BatchCosts:
    """What a token of a forward pass costs under no checkpointing and every n-th layer checkpointed, n from the
    model's layers down to ``down_to`` (one option per number of checkpointed layers), from ``estimate`` (of any
    micro-batch: the costs are linear in its tokens)."""
    options: list[tuple[int, float]] = [(0, estimate.activations(None))]
    seen: set[int] = set()
    for every_n in range(estimate.layers, max(down_to, 1) - 1, -1):
        checkpointed = math.ceil(estimate.layers / every_n)
        if checkpointed not in seen:
            seen.add(checkpointed)
            options.append((every_n, estimate.activations(every_n)))
    return BatchCosts(
        options=tuple((every_n, (total - estimate.logits) / estimate.tokens) for every_n, total in options),
        logit_bytes_per_token=estimate.logits / estimate.tokens,
        budget=budget,
        layers=estimate.layers,
    )


def explicit_plan(setting: bool | str, *, reentrant: bool) -> CheckpointingPlan:
    """The plan for ``true`` / ``false`` / ``offload`` (used as given)."""
    reason = f"training.gradient_checkpointing: {str(setting).lower()}"
    if setting is True:
        return CheckpointingPlan("on", reentrant=reentrant, reason=reason)
    if setting == "offload":
        return CheckpointingPlan("offload", reentrant=reentrant, reason=reason)
    return CheckpointingPlan("off", reason=reason)


def micro_batch(config: Any, lengths: list[int] | None = None) -> tuple[int, int]:
    """(sequences, tokens per sequence) bounding one micro-batch: ``per_device_train_batch_size × cutoff_len``, or
    with packing (``data.packing`` not false) and a token budget (``data.packing_tokens``) one row of that many
    tokens. With the training rows' token counts (``lengths``) the bound is tighter: padded batches are padded to
    their longest row, so ``batch size × the longest row``; a packed batch holds at most its share of the epoch's
    tokens plus one row (:class:`~ft_core.engine.training.packing.TokenBudgetBatchSampler` cuts at the row ends
    closest to equal shares), so whichever of the two is larger when the run may pack. A stage that puts several
    sequences of each row through the model (chosen and rejected: ``Stage.sequences_per_row``) multiplies the
    padded batch by them."""
    batch, seq_len = config.training.per_device_train_batch_size, config.data.cutoff_len
    stage = getattr(getattr(config, "stage", None), "component", None)
    per_row = int(getattr(stage, "sequences_per_row", 1) or 1)
    if per_row > 1:  # pairs are padded side by side, never packed by a token budget
        return batch * per_row, min(seq_len, max(lengths)) if lengths else seq_len
    packing = getattr(config.data, "packing", False) is not False
    budget = getattr(config.data, "packing_tokens", None)
    if packing and isinstance(budget, int) and budget > 0:
        return 1, budget
    if not lengths:
        return batch, seq_len
    longest = min(seq_len, max(lengths))
    if packing:
        from ft_core.engine.training.packing import TokenBudgetBatchSampler

        share = TokenBudgetBatchSampler(lengths, batch_size=batch, shuffle=False).mean_tokens
        packed = math.ceil(share) + longest
        if packed > batch * longest:
            return 1, packed
    return batch, longest


def _adapter_rank(config: Any) -> int:
    rank = getattr(config.adapter.options, "rank", None)
    return rank if isinstance(rank, int) and rank > 0 else 16


def plan_for_run(
    config: Any,
    model_config: Any,
    *,
    on_gpu: bool,
    dtype: Any,
    device: int = 0,
    fused_loss: bool = False,
    lengths: list[int] | None = None,
) -> CheckpointingPlan:
    """The checkpointing plan of a run (``config`` is the :class:`~ft_core.api.config.RunConfig`; ``lengths``: the
    training rows' token counts when the data is prepared, for a tighter micro-batch bound, :func:`micro_batch`)."""
    training = config.training
    setting = training.gradient_checkpointing
    full_training = bool(config.adapter.component.saves_full_model)
    reentrant = training.gradient_checkpointing_reentrant
    if reentrant is None:
        reentrant = not full_training
    if setting == "offload" and not on_gpu:
        return CheckpointingPlan(
            "on",
            reentrant=reentrant,
            reason="offload on a CPU run: activations already live in host memory, every layer is checkpointed",
        )
    if setting != "auto":
        return explicit_plan(setting, reentrant=reentrant)
    if not on_gpu:
        return CheckpointingPlan("off", reason="auto on the CPU")
    import torch

    weight_bytes = None
    quantizer = config.one("quantization")
    if quantizer is not None:
        bits = getattr(quantizer.options, "bits", 4)
        weight_bytes = (bits if isinstance(bits, int) else 4) / 8 + 0.05  # scales / absmax
    batch, seq_len = micro_batch(config, lengths)
    estimate = _run_estimate(
        config, model_config, dtype, batch, seq_len, weight_bytes=weight_bytes, fused_loss=fused_loss
    )
    free, total = torch.cuda.mem_get_info(device)
    return decide(
        estimate,
        _least_across_processes(float(free), device),
        reentrant=reentrant,
        memory_budget=budget_bytes(training.memory_budget, float(total)),
        # eager attention grows with the square of a row; a compiled model would recompile for each choice
        per_batch=config.model.attn_implementation != "eager" and not training.torch_compile,
    )


def _run_estimate(
    config: Any,
    model_config: Any,
    dtype: Any,
    batch: int,
    seq_len: int,
    *,
    weight_bytes: float | None = None,
    fused_loss: bool = False,
) -> MemoryEstimate:
    """:func:`estimate_memory` with what the run's config says of the training: full or adapter (its rank), eager
    attention, weights in ``dtype``."""
    return estimate_memory(
        model_config,
        batch_size=batch,
        seq_len=seq_len,
        dtype_bytes=_dtype_bytes(dtype),
        full_training=bool(config.adapter.component.saves_full_model),
        adapter_rank=_adapter_rank(config),
        weight_bytes=weight_bytes,
        fused_loss=fused_loss,
        eager_attention=config.model.attn_implementation == "eager",
    )


def _least_across_processes(free: float, device: int) -> float:
    """The smallest free memory of all processes of a multi-process run, so that every rank decides the same."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return free
    value = torch.tensor([free], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        value = value.to(f"cuda:{device}")
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return float(value.item())


def merged_batch_fits(
    config: Any,
    model: Any,
    plan: CheckpointingPlan,
    tokens: int,
    *,
    device: int = 0,
    free: float | None = None,
) -> bool:
    """Whether a packed micro-batch of ``tokens`` tokens (the largest of a run merging its gradient accumulation
    steps) fits the GPU now, with ``plan``'s checkpointing: its activations, the trained parameters' gradients and
    optimizer state against the free memory (``free``, default ``torch.cuda.mem_get_info``: measured after the
    weights loaded, so they are not counted again; within ``training.memory_budget`` less what the process holds)
    less the safety margin."""
    import torch

    from ft_core.engine.models.loader import base_model

    base = base_model(model)
    parameter = next(base.parameters(), None)
    dtype = getattr(parameter, "dtype", "bfloat16")
    estimate = _run_estimate(config, base.config, dtype, 1, tokens, fused_loss=has_fused_loss(base))
    if free is None:
        card_free, total = torch.cuda.mem_get_info(device)
        budget = budget_bytes(config.training.memory_budget, float(total))
        room = None if budget is None else max(0.0, budget - float(torch.cuda.memory_allocated(device)))
        limit = _least_across_processes(usable(float(card_free), room), device)
    else:
        limit = usable(free)
    every_n = plan.every_n_layers if plan.enabled else None
    needed = estimate.gradients + estimate.optimizer + estimate.activations(every_n, offload=plan.offload)
    return needed <= limit


def usable(free: float, budget_room: float | None = None) -> float:
    """Bytes an estimate may fill: the card's free memory less the safety margin and the fixed reserve (the CUDA
    context and kernel workspaces, which ``training.memory_budget`` does not count: it bounds allocated memory),
    within the margin of what the budget leaves (``budget_room``) when there is a budget."""
    room = free * SAFETY - RESERVE_BYTES
    return room if budget_room is None else min(room, budget_room * SAFETY)
