"""Chapter 12's exercises: GRPO's group advantages, the k3 estimate of the KL to the
reference, the clipped objective, and a reward that a rule can check."""

import re

import torch

from minids.exercises.checker import Exercise
from minids.exercises.common import seeded
from minids.grpo import group_advantages as _group_advantages, grpo_loss as _grpo_loss
from minids.grpo import k3_kl, reward as _reward

# 12.1 Group advantages: each answer against the others of its group.

def group_advantages(rewards):
    """(n_prompts, G) rewards -> advantages: (r - mean) / (std + 1e-4) within each row,
    the std with Bessel's correction (n - 1)."""
    return _group_advantages(rewards)


def group_advantages_cases():
    with seeded(12):
        return [(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.1, 0.1, 0.0, 0.1]]),),
                (torch.tensor([[1.0, 1.0, 1.0, 1.0]]),),
                ((torch.rand(6, 8) > 0.6).float() + 0.1 * (torch.rand(6, 8) > 0.3).float(),)]


def _advantages(rewards, unbiased=True, per_row=True, eps=1e-4):
    if per_row:
        mean = rewards.mean(dim=1, keepdim=True)
        std = rewards.std(dim=1, keepdim=True, unbiased=unbiased)
    else:
        mean, std = rewards.mean(), rewards.std(unbiased=unbiased)
    return (rewards - mean) / (std + eps)


ADVANTAGE_MISTAKES = {
    "the baseline is each prompt's own group (a row), not the whole batch":
        lambda r: _advantages(r, per_row=False),
    "use the std with Bessel's correction (n - 1), as TRL's GRPO does":
        lambda r: _advantages(r, unbiased=False),
    "divide by the std too (standardise), not only subtract the mean (that is Dr. GRPO)":
        lambda r: r - r.mean(dim=1, keepdim=True),
}


# 12.2 k3: an estimate of KL(pi || pi_ref) from the sampled tokens alone.

def k3(logp, ref_logp):
    """Per-token k3 = pi_ref / pi - log(pi_ref / pi) - 1, from the log-probabilities of
    the sampled tokens under the policy (logp) and the reference (ref_logp)."""
    return k3_kl(logp, ref_logp)


def k3_cases():
    with seeded(13):
        return [(-torch.rand(4, 6) * 3, -torch.rand(4, 6) * 3),
                (torch.full((2, 3), -1.0), torch.full((2, 3), -1.0)),
                (torch.tensor([[-0.1, -5.0]]), torch.tensor([[-2.0, -0.2]]))]


K3_MISTAKES = {
    "the ratio is pi_ref / pi: exp(ref_logp - logp), not exp(logp - ref_logp)":
        lambda logp, ref: k3_kl(ref, logp),
    "k3 = ratio - log(ratio) - 1: that is the log-ratio (k1), which can be negative":
        lambda logp, ref: ref - logp,
    "subtract 1: k3 is 0 when the policy equals the reference":
        lambda logp, ref: k3_kl(logp, ref) + 1,
}


# 12.3 The clipped objective, averaged per answer, then over answers.

def grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps, beta):
    """GRPO's loss (a scalar): per token -(min(rho A, clip(rho, 1 - eps, 1 + eps) A) -
    beta k3) with rho = exp(logp - old_logp); averaged over each answer's tokens (mask),
    then over answers. logp, old_logp, ref_logp, mask (N, T); advantages (N,)."""
    return _grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps, beta)[0]


def grpo_loss_cases():
    cases = []
    with seeded(14):
        for N, T in ((2, 3), (4, 7), (6, 5)):
            logp = -torch.rand(N, T) * 2
            old = logp + 0.4 * torch.randn(N, T)  # ratios well outside [0.8, 1.2] too
            ref = logp + 0.3 * torch.randn(N, T)
            mask = torch.ones(N, T)
            for i in range(N):
                mask[i, torch.randint(1, T + 1, ()).item():] = 0  # answers of many lengths
            cases.append((logp, old, ref, torch.randn(N), mask, 0.2, 0.04))
    return cases


def _loss(logp, old, ref, A, mask, eps, beta, clip=True, per_answer=True, minimum=True,
          kl_sign=1.0):
    ratio = torch.exp(logp - old)
    A = A[:, None]
    clipped = ratio.clamp(1 - eps, 1 + eps) * A if clip else ratio * A
    surrogate = torch.minimum(ratio * A, clipped) if minimum else clipped
    per_token = -(surrogate - kl_sign * beta * k3_kl(logp, ref))
    if per_answer:
        return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    return (per_token * mask).sum() / mask.sum()


GRPO_LOSS_MISTAKES = {
    "take the minimum of the clipped and the unclipped term (the pessimistic one)":
        lambda *a: _loss(*a, minimum=False),
    "clip the ratio to [1 - eps, 1 + eps]: without it a step can move the policy far":
        lambda *a: _loss(*a, clip=False),
    "average each answer over its own tokens first, then over answers (that is DAPO's "
    "all-token mean)": lambda *a: _loss(*a, per_answer=False),
    "the KL is a penalty: the loss is -(surrogate - beta k3)":
        lambda *a: _loss(*a, kl_sign=-1.0),
}


# 12.4 A reward that a rule can check.

def reward(reply, answer, format_reward):
    """1.0 when the reply's final integer is answer (exact match, as in 11.4), plus
    format_reward when the reply ends with "Answer: <integer>"."""
    return _reward(reply, answer, format_reward)


def reward_cases():
    worked = "12 + 7: 2 + 7 = 9, write 9. 1 + 0 = 1, write 19. Answer: 19"
    return [(worked, 19, 0.1), (worked, 18, 0.1), (worked, 19, 0.0),
            ("12 + 7 = 19", 19, 0.1), ("Answer: 19. Then more text", 19, 0.1),
            ("12 + 7: 2 + 7 = 9, write 9.", 19, 0.1), ("I do not know", 19, 0.1),
            ("Answer: -3", -3, 0.25), ("Answer: 1,234", 1234, 0.1)]


def _reward_mistake(reply, answer, format_reward, bonus_if_right_only=False, anywhere=False):
    right = _reward(reply, answer, 0.0)
    pattern = r"Answer: -?[\d,]+" if anywhere else r"Answer: -?\d+$"
    finished = re.search(pattern, reply.strip()) is not None
    if bonus_if_right_only:
        return right + format_reward * (finished and right > 0)
    return right + format_reward * finished


REWARD_MISTAKES = {
    "the format bonus is for ending with \"Answer: N\", right or wrong":
        lambda *a: _reward_mistake(*a, bonus_if_right_only=True),
    "the reply must END with \"Answer: N\" to earn the format bonus":
        lambda *a: _reward_mistake(*a, anywhere=True),
    "the answer counts 1.0 whether or not the reply is well formatted":
        lambda r, a, f: float(_reward(r, a, f) >= 1.0) if "Answer" in r else 0.0,
}


EXERCISES = [
    Exercise("12.1", "group advantages", group_advantages_cases, group_advantages,
             ADVANTAGE_MISTAKES),
    Exercise("12.2", "the k3 estimate", k3_cases, k3, K3_MISTAKES),
    Exercise("12.3", "the clipped objective", grpo_loss_cases, grpo_loss, GRPO_LOSS_MISTAKES),
    Exercise("12.4", "a rule-based reward", reward_cases, reward, REWARD_MISTAKES),
]
