"""The pieces of PPO against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ft_core_ppo.algorithm import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_penalised_rewards,
    masked_mean,
    masked_var,
    policy_loss,
    stack_scalars,
    token_logprobs,
    value_loss,
    whiten,
)
from ft_core_ppo.trainer import left_pad, prompt_batch, response_mask


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_matches_the_recursion_by_hand():
    # delta_2 = 1 - 0.3 = 0.7; delta_1 = 0.3 - 0.4 = -0.1; delta_0 = 0.4 - 0.5 = -0.1 (gamma 1)
    # A_2 = 0.7; A_1 = -0.1 + 0.5 * 0.7 = 0.25; A_0 = -0.1 + 0.5 * 0.25 = 0.025
    advantages, returns = gae(t([0, 0, 1]), t([0.5, 0.4, 0.3]), t([1, 1, 1]), gamma=1.0, lam=0.5)
    assert advantages.tolist()[0] == pytest.approx([0.025, 0.25, 0.7])
    assert returns.tolist()[0] == pytest.approx([0.525, 0.65, 1.0])


def test_gae_discounts_and_ends_each_sequence_at_its_mask():
    # gamma 0.9, lam 1: A_1 = 1 - 0.2 = 0.8 (the padded step's value 7 is not bootstrapped);
    # A_0 = 0 + 0.9 * 0.2 - 0.5 + 0.9 * 0.8 = 0.4
    advantages, returns = gae(t([0, 1, 9]), t([0.5, 0.2, 7]), t([1, 1, 0]), gamma=0.9, lam=1.0)
    assert advantages.tolist()[0] == pytest.approx([0.4, 0.8, 0.0])
    assert returns.tolist()[0] == pytest.approx([0.9, 1.0, 0.0])


def test_policy_loss_clips_the_ratio_pessimistically():
    # ratios 1 and 2, advantage 1: terms -1 / -2 unclipped, -1 / -1.2 clipped -> max -1, -1.2 -> mean -1.1
    result = policy_loss(t([0, math.log(2)]), t([0, 0]), t([1, 1]), t([1, 1]), cliprange=0.2)
    assert float(result.loss) == pytest.approx(-1.1)
    assert float(result.clipfrac) == pytest.approx(0.5)
    assert float(result.approx_kl) == pytest.approx(0.25 * math.log(2) ** 2)
    assert float(result.ratio) == pytest.approx(1.5)
    # ratio 0.5 with advantage -1: unclipped 0.5, clipped 0.8 -> 0.8; the masked token does not count
    result = policy_loss(t([math.log(0.5), 5]), t([0, 0]), t([-1, 3]), t([1, 0]), cliprange=0.2)
    assert float(result.loss) == pytest.approx(0.8)
    assert float(result.clipfrac) == 1.0


def test_value_loss_clips_around_the_old_values():
    # V = 1, 0; V_old = 0, 0; R = 1, 1; clip 0.2 -> V_clip = 0.2, 0
    # squared errors unclipped 0, 1; clipped 0.64, 1 -> 0.5 * mean(0.64, 1) = 0.41
    loss, clipfrac = value_loss(t([1, 0]), t([0, 0]), t([1, 1]), t([1, 1]), cliprange_value=0.2)
    assert float(loss) == pytest.approx(0.41)
    assert float(clipfrac) == pytest.approx(0.5)


def test_kl_penalty_per_token_and_the_score_at_the_last_token():
    rewards, kl = kl_penalised_rewards(
        torch.tensor([2.0, 1.0]),
        t([-1, -1, -1], [-1, -1, -1]),
        t([-1.5, -1, -2], [-2, -1, -1]),
        t([1, 1, 0], [1, 1, 1]),
        kl_coef=0.1,
    )
    assert torch.allclose(kl, t([0.5, 0, 0], [1, 0, 0]))
    assert torch.allclose(rewards, t([-0.05, 2.0, 0], [-0.1, 0, 1.0]))


def test_whitening_and_masked_statistics():
    values, mask = t([1, 2, 3, 100]), t([1, 1, 1, 0])
    assert float(masked_mean(values, mask)) == 2.0
    assert float(masked_var(values, mask)) == pytest.approx(1.0)  # Bessel-corrected: (1 + 0 + 1) / 2
    assert float(masked_var(values, mask, unbiased=False)) == pytest.approx(2 / 3)
    assert whiten(values, mask).tolist()[0] == pytest.approx([-1, 0, 1, 0], abs=1e-6)
    assert whiten(values, mask, shift_mean=False).tolist()[0] == pytest.approx([1, 2, 3, 0], abs=1e-6)


def test_adaptive_kl_controller_moves_by_at_most_20_percent_of_the_horizon_share():
    controller = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    controller.update(9.0, n_steps=100)  # error clipped to +0.2
    assert controller.value == pytest.approx(0.2 * 1.002)
    controller = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    controller.update(6.6, n_steps=100)  # error 0.1
    assert controller.value == pytest.approx(0.2 * 1.001)
    controller.update(0.0, n_steps=10000)  # error clipped to -0.2 over a whole horizon
    assert controller.value == pytest.approx(0.2 * 1.001 * 0.8)
    controller.update(float("nan"), n_steps=100)
    assert controller.value == pytest.approx(0.2 * 1.001 * 0.8)
    fixed = FixedKLController(0.05)
    fixed.update(100.0, n_steps=100)
    assert fixed.value == 0.05


def test_entropy_and_token_logprobs():
    assert entropy_from_logits(torch.zeros(1, 4)).tolist() == pytest.approx([math.log(4)])
    assert float(entropy_from_logits(torch.tensor([[0.0, -1e4]]))[0]) == pytest.approx(0.0, abs=1e-6)
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
    assert token_logprobs(logits, torch.tensor([[0, 2]])).tolist()[0] == pytest.approx(
        [math.log(0.5), math.log(0.8)]
    )


def test_rollout_helpers_pad_and_mask():
    ids, mask = left_pad([[7, 8, 9], [5]], pad_token_id=0)
    assert ids.tolist() == [[7, 8, 9], [0, 0, 5]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    responses = torch.tensor([[5, 4, 7, 4], [5, 5, 5, 5], [3, 6, 6, 6]])
    assert response_mask(responses, {4, 3}).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    batch = prompt_batch([{"prompt_ids": [1, 2], "answer": "4"}, {"prompt_ids": [3], "answer": ""}])
    assert batch == {"prompt_ids": [[1, 2], [3]], "answer": ["4", ""]}


def test_statistics_on_different_devices_stack_on_the_target_device():
    """The rollout's statistics live on the GPU while the KL coefficient is a CPU tensor (a GPU run failed there);
    the meta device stands in for the GPU."""
    on_gpu = torch.tensor(2.0, device="meta")
    stacked = stack_scalars([on_gpu, torch.tensor(0.05), torch.tensor([3], dtype=torch.long)], "meta")
    assert stacked.device.type == "meta" and stacked.shape == (3,) and stacked.dtype == torch.float32
    assert stack_scalars([torch.tensor(1), torch.tensor([0.5])], "cpu").tolist() == [1.0, 0.5]
