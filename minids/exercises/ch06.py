"""Chapter 06's exercises: the MTP loss."""

import torch

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.model import IGNORE_INDEX, cross_entropy

# 06.1 The MTP loss: which targets does depth k predict?

def mtp_loss(mtp_logits, targets, k):
    """mtp_logits (B, T - k, vocab) of MTP depth k; targets (B, T), the main model's
    next-token targets (IGNORE_INDEX where nothing is to be learned) -> the mean
    cross-entropy of depth k, a scalar tensor."""
    return cross_entropy(mtp_logits, targets[:, k:])


def mtp_loss_cases():
    with seeded(7):
        targets = torch.randint(0, 50, (3, 12))
        targets[0, :4] = IGNORE_INDEX  # e.g. a prompt in supervised fine-tuning
        return [
            (randn(2, 9, 32), torch.randint(0, 32, (2, 10)), 1),
            (randn(3, 10, 50), targets, 2),
            (randn(1, 5, 20), torch.randint(0, 20, (1, 8)), 3),
        ]


MTP_LOSS_MISTAKES = {
    "position i of depth k predicts t_(i+k+1) = targets[:, i + k]: drop the first k "
    "targets, not the last k": lambda logits, t, k: cross_entropy(logits, t[:, :-k]),
}


EXERCISES = [
    Exercise("06.1", "MTP loss of depth k", mtp_loss_cases, mtp_loss, MTP_LOSS_MISTAKES),
]
