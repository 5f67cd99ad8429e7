import math

import pytest
import torch

from minids.grpo import group_advantages, grpo_loss, k3_kl, shuffled_within_groups


def test_advantages_are_zero_mean_per_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    advantages = group_advantages(rewards)
    torch.testing.assert_close(advantages.mean(dim=1), torch.zeros(3))
    assert torch.equal(advantages[2], torch.zeros(4))  # nothing to learn from equal rewards
    # (1 - 0.5) / (std with Bessel = sqrt(1/3) + 1e-4)
    assert advantages[0, 0].item() == pytest.approx(0.5 / (math.sqrt(1 / 3) + 1e-4))
    assert advantages[1].argmax() == 3


def test_k3_is_nonnegative_and_zero_when_policy_equals_reference():
    torch.manual_seed(0)
    logp, ref = -torch.rand(100) * 5, -torch.rand(100) * 5
    assert (k3_kl(logp, ref) >= 0).all()
    assert torch.equal(k3_kl(logp, logp), torch.zeros(100))


def test_grpo_loss_equals_a_hand_computation():
    # two answers: the first has 2 answer tokens, the second 1 (its 2nd token is padding)
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]])
    old = torch.tensor([[-1.5, -2.0], [-0.1, -9.0]])
    ref = torch.tensor([[-1.0, -1.0], [-0.5, -9.0]])
    advantages = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, kl = grpo_loss(logp, old, ref, advantages, mask, clip_eps=0.2, beta=0.1)

    # answer 1, token 1: ratio e^0.5 = 1.6487 > 1.2, A = +1 -> min(1.6487, 1.2) = 1.2; kl 0
    # answer 1, token 2: ratio 1 -> 1.0; kl = e^1 - 1 - 1 = 0.71828
    # answer 2, token 1: ratio e^-0.4 = 0.67032 < 0.8, A = -1 -> min(-0.67032, -0.8) = -0.8
    k = math.e - 2
    answer1 = (-(1.2 - 0) - (1.0 - 0.1 * k)) / 2
    answer2 = -(-0.8)
    assert loss.item() == pytest.approx((answer1 + answer2) / 2, abs=1e-6)
    assert kl.item() == pytest.approx((k / 2 + 0) / 2, abs=1e-6)


def test_gradient_pushes_up_good_answers_and_down_bad_ones():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), torch.tensor([1.0, -1.0]),
                        torch.ones(2, 3), beta=0.0)
    loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # descent raises row 0


def test_the_control_shuffles_rewards_within_each_group_only():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.1, 0.1, 0.0, 0.0]] * 50)
    shuffled = shuffled_within_groups(rewards, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.sort(dim=1).values, rewards.sort(dim=1).values)  # same rewards
    assert (shuffled != rewards).any(dim=1).float().mean() > 0.9  # in another order
    assert torch.equal(shuffled, shuffled_within_groups(rewards, torch.Generator().manual_seed(0)))
