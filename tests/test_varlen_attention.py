"""``torch_varlen``: packed rows through PyTorch's varlen flash kernel give what each row gives alone, and every
call the kernel cannot serve falls back to ``sdpa`` with the right mask. The kernel itself is CUDA-only: on the
CPU a reference with its contract stands in for it (the GPU test runs the real one)."""

from __future__ import annotations

import inspect

import pytest
import torch

from ft_core.engine.models import varlen_attention
from ft_core.engine.training.packing import packing_collator
from ft_core.testing import tiny_model


def _rows(tokenizer, lengths=(7, 12, 5)) -> list[dict[str, list[int]]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {"input_ids": torch.randint(5, len(tokenizer), (n,), generator=generator).tolist()} for n in lengths
    ]


def _packed_and_alone(model, rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the packed rows under ``torch_varlen``, and of each row alone under ``sdpa``."""
    batch = packing_collator(varlen_kwargs=True)([dict(r) for r in rows])
    with torch.no_grad():
        varlen_attention.register()
        model.set_attn_implementation(varlen_attention.NAME)
        packed = model(**batch).logits
        model.set_attn_implementation("sdpa")
        alone = torch.cat([model(input_ids=torch.tensor([r["input_ids"]])).logits for r in rows], dim=1)
    return packed, alone


def _reference_kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1),
                      enable_gqa=False, **_):  # fmt: skip
    """``varlen_attn``'s contract (tokens x heads x dim, rows cut at ``cu_seq_*``) computed row by row."""
    assert query.dim() == 3 and query.shape[0] == int(cu_seq_q[-1]) and max_q == max(cu_seq_q.diff().tolist())
    assert enable_gqa == (key.shape[1] != query.shape[1])
    outputs = []
    for start, end in zip(cu_seq_q[:-1].tolist(), cu_seq_q[1:].tolist(), strict=True):
        q, k, v = (t[start:end].transpose(0, 1) for t in (query, key, value))
        causal = tuple(window_size) == (-1, 0)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=causal, scale=scale, enable_gqa=enable_gqa
            ).transpose(0, 1)
        )
    return torch.cat(outputs)


def _old_reference_kernel(
    query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None
):
    """The first releases' signature: ``is_causal``, no ``scale`` or ``enable_gqa`` (the kernel did GQA itself)."""
    return _reference_kernel(
        query,
        key,
        value,
        cu_seq_q,
        cu_seq_k,
        max_q,
        max_k,
        window_size=(-1, 0) if is_causal else (-1, -1),
        enable_gqa=key.shape[1] != query.shape[1],
    )


@pytest.fixture
def kernel_on_the_cpu(monkeypatch):
    """Serve packed calls on the CPU with a stand-in kernel (``kernel_on_the_cpu(fn)``); counts the calls."""
    import torch.nn.attention.varlen as varlen

    calls: list[int] = []

    def install(fn):
        def counted(*args, **kwargs):
            calls.append(1)
            return fn(*args, **kwargs)

        counted.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        monkeypatch.setattr(varlen, "varlen_attn", counted)
        varlen_attention._kernel_parameters.cache_clear()
        monkeypatch.setattr(
            varlen_attention,
            "_kernel_can_serve",
            lambda module, query, dropout, kwargs: kwargs.get("cu_seq_lens_q") is not None,
        )
        return calls

    yield install
    varlen_attention._kernel_parameters.cache_clear()


@pytest.mark.parametrize(
    "kernel", [_reference_kernel, _old_reference_kernel], ids=["current", "first-release"]
)
def test_packed_rows_through_the_kernel_match_each_row_alone(tiny_tokenizer, kernel_on_the_cpu, kernel):
    calls = kernel_on_the_cpu(kernel)
    model = tiny_model(
        tiny_tokenizer, attn_implementation="sdpa"
    )  # grouped-query attention: 4 heads, 2 KV heads
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    packed, alone = _packed_and_alone(model, _rows(tiny_tokenizer))
    assert calls, "the packed forward did not reach the varlen kernel"
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)


def test_a_scale_the_first_release_cannot_take_goes_to_sdpa(tiny_tokenizer, kernel_on_the_cpu):
    calls = kernel_on_the_cpu(_old_reference_kernel)
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    for layer in model.model.layers:
        layer.self_attn.scaling = 0.5  # not 1/sqrt(head_dim): that kernel has no scale parameter
    packed, alone = _packed_and_alone(model, _rows(tiny_tokenizer))
    assert not calls
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)


def test_packed_rows_on_the_sdpa_fallback_stay_apart(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa")  # no CUDA here: every call falls back
    packed, alone = _packed_and_alone(model, _rows(tiny_tokenizer))
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)


def test_the_fallback_keeps_a_sliding_window(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, model_type="mistral", sliding_window=4).eval()
    assert model.config.sliding_window == 4
    packed, alone = _packed_and_alone(model, _rows(tiny_tokenizer, (9, 6, 11)))
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)


def test_padded_batches_and_generation_fall_back_to_sdpa(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    model.generation_config.pad_token_id = tiny_tokenizer.pad_token_id
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(
        ["hello there", "a longer prompt than the other one"], return_tensors="pt", padding=True
    )
    expected = model.generate(**batch, max_new_tokens=5, do_sample=False)
    varlen_attention.register()
    model.set_attn_implementation(varlen_attention.NAME)
    assert torch.equal(model.generate(**batch, max_new_tokens=5, do_sample=False), expected)


def test_new_tokens_after_a_cache_see_the_cache_and_each_other_causally():
    """Three new queries after five cached keys: query i sees keys 0..5+i (SDPA's own is_causal would align them
    to the first keys instead)."""
    torch.manual_seed(0)
    query, key, value = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8)
    module = torch.nn.Module()
    module.is_causal = True
    output, _ = varlen_attention.varlen_attention_forward(module, query, key, value, None)
    allowed = torch.arange(8)[None, :] <= torch.arange(5, 8)[:, None]
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
    torch.testing.assert_close(output, expected.transpose(1, 2))


def test_soft_capped_logits_are_refused_on_the_fallback():
    with pytest.raises(NotImplementedError, match="cannot soft-cap"):
        query = torch.zeros(1, 2, 3, 4)
        varlen_attention.varlen_attention_forward(torch.nn.Module(), query, query, query, None, softcap=30.0)


def test_it_says_why_it_cannot_run_here():
    reason = varlen_attention.unavailable_reason(torch.bfloat16)
    assert reason == (None if torch.cuda.is_available() else "no CUDA GPU")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_real_kernel_matches_sdpa_forward_and_backward(tiny_tokenizer):
    """bf16 on a GPU: logits and LoRA-free gradients of packed rows through the real kernel against each row
    alone through sdpa."""
    assert varlen_attention.unavailable_reason(torch.bfloat16) is None
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa").to("cuda", torch.bfloat16)
    rows = _rows(tiny_tokenizer, (37, 120, 64))
    batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in packing_collator(True)(rows).items()}
    varlen_attention.register()
    model.set_attn_implementation(varlen_attention.NAME)
    packed = model(**batch).logits.float()
    packed.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_attn_implementation("sdpa")
    alone = torch.cat(
        [model(input_ids=torch.tensor([r["input_ids"]], device="cuda")).logits for r in rows], 1
    )
    alone.float().sum().backward()
    torch.testing.assert_close(packed, alone.float(), atol=2e-2, rtol=2e-2)
    for got, want in zip(grads, (p.grad for p in model.parameters()), strict=True):  # bf16: compare norms
        assert (got.float() - want.float()).norm() <= 2e-2 * want.float().norm() + 1e-3
