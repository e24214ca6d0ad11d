"""Padding-free forward passes over a stage's padded batches (``packs_padded_batches``, e.g. dpo): the packed
pass gives each row's own outputs (no row attends to another), TRL's fused-head log-probabilities and the
gradients of the padded pass, and leaves what it cannot flatten alone."""

from __future__ import annotations

import pytest
import torch

from ft_core.api.context import IGNORE_INDEX
from ft_core.engine.training.padding_free import PaddingFreeForward
from ft_core.testing.tiny import tiny_model


def padded_batch(lengths: list[int], width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` (pad 0) and ``attention_mask`` of rows of ``lengths`` tokens."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (len(lengths), width), generator=generator)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


@pytest.fixture
def model(tiny_tokenizer):
    return tiny_model(tiny_tokenizer).eval()


def test_each_row_gets_its_own_logits_and_the_padded_shape_back(model):
    ids, mask = padded_batch([7, 3, 10, 5], width=10)
    reference = model(input_ids=ids, attention_mask=mask).logits
    forward = PaddingFreeForward()
    handles = forward.attach(model)
    packed = model(input_ids=ids, attention_mask=mask).logits
    assert forward.flattened == 1 and packed.shape == reference.shape
    keep = mask.bool()
    torch.testing.assert_close(packed[keep], reference[keep], rtol=1e-5, atol=1e-5)
    assert not packed[~keep].any()  # padded positions are zero, computed nowhere
    for handle in handles:
        handle.remove()


def test_trl_fused_head_log_probs_and_gradients_equal_the_padded_pass(tiny_tokenizer):
    from trl.trainer.utils import add_fused_lm_head

    ids, mask = padded_batch([6, 9, 4, 9], width=9, seed=1)
    completion = mask.clone()
    completion[:, :3] = 0  # a three-token prompt in every row
    labels = ids.masked_fill(completion == 0, IGNORE_INDEX)

    def pass_(packed: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = tiny_model(tiny_tokenizer)
        add_fused_lm_head(model, outputs=("log_probs", "entropy"))
        if packed:
            PaddingFreeForward().attach(model)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        sequence_logps = out.log_probs.sum(dim=1)
        (sequence_logps * torch.tensor([1.0, -1.0, 0.5, 2.0])).sum().backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        return torch.stack([sequence_logps, out.entropy.sum(dim=1)]), grads

    (reference, reference_grads), (packed, packed_grads) = pass_(False), pass_(True)
    torch.testing.assert_close(packed, reference, rtol=1e-5, atol=1e-5)
    assert reference_grads.keys() == packed_grads.keys()
    for name, grad in reference_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_no_row_is_trained_on_the_first_token_of_the_next(model):
    ids, mask = padded_batch([4, 5], width=5, seed=2)
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    seen: dict[str, torch.Tensor] = {}
    PaddingFreeForward(varlen_kwargs=True).attach(model)
    model.register_forward_pre_hook(lambda m, a, k: seen.update(k), with_kwargs=True)  # runs after flattening
    model(input_ids=ids, attention_mask=mask, labels=labels)
    assert seen["input_ids"].shape == (1, 9) and seen["attention_mask"] is None
    assert seen["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 3, 4]]
    assert seen["labels"][0, [0, 4]].tolist() == [IGNORE_INDEX] * 2  # each row's first token
    assert seen["cu_seq_lens_q"].tolist() == [0, 4, 9] and seen["max_length_k"] == 5


@pytest.mark.parametrize(
    ("lengths", "why"),
    [([5, 5, 5], "no padding"), ([5], "a single row"), ([5, 0, 3], "an empty row")],
)
def test_batches_with_nothing_to_save_pass_unchanged(model, lengths, why):
    ids, mask = padded_batch(lengths, width=5)
    forward = PaddingFreeForward()
    forward.attach(model)
    model(input_ids=ids, attention_mask=mask)
    assert forward.flattened == 0, why


def test_left_padded_batches_pass_unchanged(model):
    ids, mask = padded_batch([3, 5], width=5)
    ids, mask = ids.flip(1), mask.flip(1)  # generation pads on the left
    forward = PaddingFreeForward()
    forward.attach(model)
    reference_free = model(input_ids=ids, attention_mask=mask).logits
    assert forward.flattened == 0 and reference_free.shape == (2, 5, model.config.vocab_size)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_varlen_kernel_gives_the_padded_pass_log_probs_on_a_gpu(tiny_tokenizer):
    """bf16 on a GPU through ``torch_varlen`` (the kernel a packed GPU run switches to): TRL's fused-head
    log-probabilities of a padded batch, flattened, against the padded pass through sdpa."""
    from trl.trainer.utils import add_fused_lm_head

    from ft_core.engine.models import varlen_attention

    ids, mask = (t.cuda() for t in padded_batch([40, 17, 64, 33], width=64, seed=3))
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    model = tiny_model(tiny_tokenizer, attn_implementation="sdpa").to("cuda", torch.bfloat16)
    add_fused_lm_head(model)
    padded = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True).log_probs.float()
    varlen_attention.register()
    model.set_attn_implementation(varlen_attention.NAME)
    forward = PaddingFreeForward(varlen_kwargs=True)
    forward.attach(model)
    packed = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True).log_probs.float()
    assert forward.flattened == 1
    torch.testing.assert_close(packed.sum(dim=1), padded.sum(dim=1), atol=5e-2, rtol=2e-2)


def test_a_pass_that_failed_leaves_the_next_one_correct(model):
    ids, mask = padded_batch([6, 2, 4], width=6, seed=4)
    reference = model(input_ids=ids, attention_mask=mask).logits
    forward = PaddingFreeForward()
    forward.attach(model)
    failing = model.register_forward_pre_hook(lambda m, a, k: 1 / 0, with_kwargs=True)
    with pytest.raises(ZeroDivisionError):
        model(input_ids=ids, attention_mask=mask)  # flattened, then failed before the forward hook
    failing.remove()
    packed = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(packed[mask.bool()], reference[mask.bool()], rtol=1e-5, atol=1e-5)
    assert forward.flattened == 2


def test_a_frozen_reference_gets_the_varlen_attention_the_policy_switched_to(tiny_tokenizer):
    from ft_core.engine.models import varlen_attention
    from ft_core.engine.training.packing import match_attention

    reference = tiny_model(tiny_tokenizer, attn_implementation="sdpa")
    match_attention(reference, "sdpa")
    assert reference.config._attn_implementation == "sdpa"
    varlen_attention.register()
    match_attention(reference, varlen_attention.NAME)
    assert reference.config._attn_implementation == varlen_attention.NAME
