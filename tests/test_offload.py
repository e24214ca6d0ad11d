"""``gradient_checkpointing: offload``'s machinery: the pinned host arena the copies live in, and (on a GPU) the
copies out and back, prefetched one tensor ahead of the backward pass, giving the gradients of no offloading."""

from __future__ import annotations

import pytest
import torch

from ft_core.engine.models import offload
from ft_core.engine.models.offload import ALIGNMENT, AsyncHostOffload, HostArena


def test_the_arena_hands_out_aligned_slices_and_starts_over_after_a_reset(monkeypatch):
    monkeypatch.setattr(offload, "FIRST_CHUNK", 4096)
    arena = HostArena(pin=False)
    first, second = arena.take(1000), arena.take(2000)
    assert arena.allocations == 1 and arena.capacity == 4096
    assert second.data_ptr() - first.data_ptr() == -(-1000 // ALIGNMENT) * ALIGNMENT
    arena.reset()
    assert arena.take(3000).data_ptr() == first.data_ptr() and arena.allocations == 1


def test_a_request_that_fits_no_chunk_adds_one_as_large_as_the_others_and_keeps_earlier_slices(monkeypatch):
    monkeypatch.setattr(offload, "FIRST_CHUNK", 4096)
    arena = HostArena(pin=False)
    small = arena.take(3000)
    small.fill_(7)
    big = arena.take(3000)  # does not fit after the first: a second chunk of 4096 bytes
    huge = arena.take(10_000)  # larger than both: a chunk of its own size
    assert [chunk.numel() for chunk in arena.chunks] == [4096, 4096, 10_000]
    assert big.numel() == 3000 and huge.numel() == 10_000 and bool((small == 7).all())
    arena.reset()
    for size in (3000, 3000, 10_000):  # the same step again allocates nothing
        arena.take(size)
    assert arena.allocations == 3


def test_reserve_adds_one_chunk_making_up_the_difference(monkeypatch):
    monkeypatch.setattr(offload, "FIRST_CHUNK", 4096)
    arena = HostArena(pin=False)
    arena.reserve(10_000)
    assert [chunk.numel() for chunk in arena.chunks] == [10_000]
    for _ in range(3):
        arena.take(3000)  # a step of three tensors fits the reserved chunk
    arena.reserve(10_000)
    arena.reserve(12_000)  # more: a second chunk at least as large as the first
    assert [chunk.numel() for chunk in arena.chunks] == [10_000, 10_000]


def test_reserve_in_background_pins_the_arena_before_the_first_copy():
    hooks = AsyncHostOffload()
    hooks.arena = HostArena(pin=False)
    hooks.reserve_in_background(123_456, device=0)
    hooks.wait_reserved()
    assert hooks.arena.capacity == 123_456 and hooks.arena.allocations == 1
    hooks.wait_reserved()  # nothing under way: returns


def test_cpu_tensors_are_kept_as_they_are():
    hooks = AsyncHostOffload(min_bytes=0)
    tensor = torch.ones(4)
    assert hooks.pack(tensor) is tensor and hooks.unpack(tensor) is tensor
    assert hooks.offloaded == 0 and hooks.arena.capacity == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_offloaded_steps_give_the_gradients_of_no_offloading_and_reuse_one_arena():
    weights = [torch.randn(256, 256, device="cuda", requires_grad=True) for _ in range(6)]
    x = torch.randn(512, 256, device="cuda")

    def step(hooks: AsyncHostOffload | None) -> list[torch.Tensor]:
        for weight in weights:
            weight.grad = None
        hidden = x
        for weight in weights:
            hidden = hidden @ weight
            if hooks is None:
                hidden = torch.tanh(hidden)
            else:
                with hooks.hooks():  # tanh saves its output, one tensor per layer
                    hidden = torch.tanh(hidden)
        hidden.square().sum().backward()
        return [weight.grad.clone() for weight in weights]

    reference = step(None)
    hooks = AsyncHostOffload(min_bytes=0, layers=len(weights))
    allocations = []
    for _ in range(3):
        for got, expected in zip(step(hooks), reference, strict=True):
            torch.testing.assert_close(got, expected)
        allocations.append(hooks.arena.allocations)
    assert hooks.offloaded == 3 * 6
    assert hooks.prefetched == 3 * 5  # all but the first tensor the backward pass takes came prefetched
    assert (
        allocations[0] >= 1 and allocations[1:] == [allocations[0]] * 2
    )  # later steps reuse the pinned arena
