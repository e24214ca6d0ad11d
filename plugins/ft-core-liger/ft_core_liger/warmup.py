"""Load Liger's Triton kernels while the model's weights load, not in the first training step.

The first call of each Triton kernel in a process costs far more than later ones: Triton starts its runtime, hashes
the kernel's source, loads the compiled binary from its cache and builds its launcher. An H200 profile of a LoRA run
put the first Liger call of a run at 710 ms, a tenth of the first step. :func:`start_warmup` runs Liger's RMSNorm,
SwiGLU, RoPE and fused linear cross-entropy forward and backward once, on a few tokens of the model's widths and
dtype, in a background thread on its own CUDA stream, while the main thread loads the weights. The kernels
specialise on widths, dtypes and strides, not on the token count, so the training step finds them loaded.

A warm-up that fails (an unexpected config, an old liger-kernel) is dropped silently: it only costs time later.
"""

from __future__ import annotations

import threading
from typing import Any

#: Tokens of the warm-up batch.
TOKENS = 64

#: Liger's cross-entropy kernel processes a row in blocks of ``min(next power of two of the vocabulary, this)``:
#: a vocabulary above it warms up with the smallest multiple of 16 above it (the same block size, a small weight).
_CE_BLOCK_CAP = 32768


def warm_vocabulary(vocab: int) -> int:
    """The vocabulary size to warm the fused cross-entropy with: ``vocab``, or for large vocabularies a smaller one
    that Liger's kernel handles with the same block size and alignment."""
    if vocab <= _CE_BLOCK_CAP:
        return vocab
    return _CE_BLOCK_CAP + (16 if vocab % 16 == 0 else 1)


def _width(config: Any, *names: str, default: int = 0) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def compute_dtype(run: Any) -> Any:
    """The dtype the run's hidden states will have: ``model.dtype`` when set, else ``training.precision`` (``auto``:
    bf16 where the GPU has it, else fp16), as core loads the weights."""
    import torch

    explicit = getattr(run.config.model, "dtype", "auto")
    if explicit in ("bfloat16", "float16", "float32"):
        return getattr(torch, explicit)
    precision = run.config.training.precision
    if precision in ("bf16", "fp16", "fp32"):
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def warm_kernels(model_config: Any, options: Any, dtype: Any, device: int) -> None:
    """Run each Liger kernel that ``options`` (:class:`~ft_core_liger.patch.LigerOptions`) turns on once, forward
    and backward, on :data:`TOKENS` tokens of ``model_config``'s widths in ``dtype`` on CUDA ``device`` (on a side
    stream, waiting for it)."""
    import torch
    from liger_kernel.transformers.functional import (
        liger_fused_linear_cross_entropy,
        liger_rms_norm,
        liger_rope,
        liger_swiglu,
    )

    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    hidden = _width(text, "hidden_size")
    heads = _width(text, "num_attention_heads", default=1)
    kv_heads = _width(text, "num_key_value_heads", default=heads)
    head_dim = _width(text, "head_dim", default=hidden // heads)
    intermediate = _width(text, "intermediate_size", default=4 * hidden)
    eps = float(getattr(text, "rms_norm_eps", 1e-6) or 1e-6)
    torch.cuda.set_device(device)
    stream = torch.cuda.Stream(device)
    tensor = {"device": f"cuda:{device}", "dtype": dtype}
    with torch.cuda.stream(stream):
        states = torch.randn(1, TOKENS, hidden, requires_grad=True, **tensor)
        if options.rms_norm:
            weight = torch.ones(hidden, requires_grad=True, **tensor)
            liger_rms_norm(states, weight, eps).sum().backward()
        if options.swiglu:
            gate, up = (torch.randn(1, TOKENS, intermediate, requires_grad=True, **tensor) for _ in range(2))
            liger_swiglu(gate, up).sum().backward()
        if options.rope:  # q and k as attention layers make them: (batch, tokens, heads, dim), heads first
            q = torch.randn(1, TOKENS, heads, head_dim, **tensor).transpose(1, 2).requires_grad_(True)
            k = torch.randn(1, TOKENS, kv_heads, head_dim, **tensor).transpose(1, 2).requires_grad_(True)
            cos, sin = (torch.randn(1, TOKENS, head_dim, **tensor) for _ in range(2))
            q_out, k_out = liger_rope(q, k, cos, sin)
            (q_out.sum() + k_out.sum()).backward()
        if options.fused_linear_cross_entropy:
            vocab = warm_vocabulary(_width(text, "vocab_size", default=32000))
            head = torch.randn(vocab, hidden, **tensor) * 0.02
            labels = torch.randint(0, vocab, (TOKENS,), device=tensor["device"])
            flat = states.detach().reshape(TOKENS, hidden).requires_grad_(True)
            loss = liger_fused_linear_cross_entropy(flat, head, labels, reduction="sum")
            (loss[0] if isinstance(loss, tuple) else loss).backward()
    stream.synchronize()


def start_warmup(model_config: Any, options: Any, dtype: Any, device: int) -> threading.Thread:
    """:func:`warm_kernels` in a daemon thread, started; exceptions end the thread quietly."""

    def run() -> None:
        try:
            warm_kernels(model_config, options, dtype, device)
        except Exception:  # a warm-up only saves time; the training step reports real problems
            return

    thread = threading.Thread(target=run, name="ft-core-liger-warmup", daemon=True)
    thread.start()
    return thread
