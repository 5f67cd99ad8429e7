"""Chapter 05's exercises: the sign-rule bias update, MaxVio and the sequence-wise
balance loss."""

import torch

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, router_for, seeded
from minids.moe import max_violation, sequence_balance_loss

# 05.1 The sign rule of auxiliary-loss-free balancing.

def update_bias(bias, load, gamma):
    """bias (E,) float, load (E,) tokens per expert (int64) -> the new bias:
    b_i + gamma * sign(mean load - load_i)."""
    router = router_for(bias.shape[0], 1, 1, 1, bias)
    router.load.copy_(load)
    router.update_bias(gamma)
    return router.bias


def update_bias_cases():
    with seeded(5):
        return [
            (randn(8, scale=0.01), torch.randint(0, 100, (8,)), 0.001),
            (randn(16, scale=0.01), torch.full((16,), 7), 0.01),  # balanced: no change
            (randn(4, scale=0.01), torch.tensor([40, 0, 0, 0]), 0.01),
        ]


def load_gap(load):
    return load.float().mean() - load.float()


UPDATE_BIAS_MISTAKES = {
    "the sign is flipped: an overloaded expert (load above the mean) gets a lower bias":
        lambda b, load, g: b - g * torch.sign(load_gap(load)),
    "use only the sign of (mean load - load): each step moves a bias by exactly gamma":
        lambda b, load, g: b + g * load_gap(load),
    "return the new bias, b + the change": lambda b, load, g: g * torch.sign(load_gap(load)),
}


# 05.2 MaxVio.

def max_vio(load):
    """load (E,) tokens per expert -> MaxVio = (max load - mean load) / mean load, a float."""
    return max_violation(load)


def max_vio_cases():
    with seeded(6):
        loads = torch.randint(0, 50, (8,)), torch.full((4,), 3), torch.tensor([9, 1, 1, 1])
        return [(load,) for load in loads]


MAX_VIO_MISTAKES = {
    "divide by the mean load": lambda load: float(load.max() - load.float().mean()),
    "MaxVio compares the maximum with the mean, not with the minimum":
        lambda load: float((load.max() - load.min()) / load.float().mean()),
}


# 05.3 The complementary sequence-wise balance loss (Eq. 17-20).

def balance_loss(scores, top_k, alpha):
    """scores (B, T, E) affinities -> alpha * sum_i f_i P_i per sequence, batch mean:
    f_i = E / (top_k T) * (tokens of the sequence whose unbiased top-k holds i),
    P_i = mean over the sequence of s_i / sum_j s_j."""
    return sequence_balance_loss(scores, top_k, alpha)


def balance_loss_cases():
    with seeded(7):
        skewed = torch.rand(3, 10, 8) * torch.linspace(0.2, 1.0, 8)  # late experts favoured
        mixed = torch.cat([torch.rand(1, 12, 6) * torch.linspace(1.0, 0.1, 6),
                           torch.rand(1, 12, 6) * torch.linspace(0.1, 1.0, 6)])
        return [
            (torch.rand(2, 16, 8), 2, 1e-4),
            (skewed, 3, 0.01),
            (mixed, 2, 1.0),  # two sequences skewed in opposite ways: balanced together
        ]


def top_k_counts(scores, top_k):
    """(B, T, E) -> (B, E): how many tokens of each sequence picked each expert."""
    chosen = scores.topk(top_k, dim=-1).indices
    return torch.zeros_like(scores).scatter_(-1, chosen, 1.0).sum(dim=1)


def normalised_mean(scores):
    return (scores / scores.sum(dim=-1, keepdim=True)).mean(dim=1)


def loss_from(f, P, alpha):
    return alpha * (f * P).sum(dim=-1).mean()


BALANCE_LOSS_MISTAKES = {
    "scale the counts: f_i = E / (top_k T) * count_i, so that f_i = 1 under uniform "
    "routing": lambda s, k, a: loss_from(top_k_counts(s, k), normalised_mean(s), a),
    "f_i divides by top_k T (the assignments of a sequence), then multiplies by E":
        lambda s, k, a: loss_from(top_k_counts(s, k) / s.shape[1], normalised_mean(s), a),
    "P averages the NORMALISED affinities s_i / sum_j s_j over the tokens":
        lambda s, k, a: loss_from(top_k_counts(s, k) * s.shape[-1] / (k * s.shape[1]),
                                  s.mean(dim=1), a),
    "the loss is sequence-wise: compute f and P for each sequence, sum f_i P_i over the "
    "experts, then average over the sequences (not over all the batch's tokens at once)":
        lambda s, k, a: sequence_balance_loss(s.reshape(1, -1, s.shape[-1]), k, a),
}


EXERCISES = [
    Exercise("05.1", "sign-rule bias update", update_bias_cases, update_bias,
             UPDATE_BIAS_MISTAKES),
    Exercise("05.2", "MaxVio", max_vio_cases, max_vio, MAX_VIO_MISTAKES),
    Exercise("05.3", "sequence-wise balance loss", balance_loss_cases, balance_loss,
             BALANCE_LOSS_MISTAKES),
]
