"""Chapter 05's exercises: the sign-rule bias update and MaxVio."""

import torch

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, router_for, seeded
from minids.moe import max_violation

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


EXERCISES = [
    Exercise("05.1", "sign-rule bias update", update_bias_cases, update_bias,
             UPDATE_BIAS_MISTAKES),
    Exercise("05.2", "MaxVio", max_vio_cases, max_vio, MAX_VIO_MISTAKES),
]
