"""Chapter 13's exercises: what rejection sampling costs, the filter that keeps a teacher's
first right answer, and the token-level distillation loss."""

import torch

from minids.data import extract_answer
from minids.distill import token_distillation_loss
from minids.exercises.checker import Exercise
from minids.exercises.common import seeded

# 13.1 The cost of rejection sampling.

def rejection_cost(p, k):
    """(acceptance, expected samples) for a problem the teacher solves with probability p
    per sample, asked up to k times, stopping at the first right answer: acceptance
    1 - (1 - p)^k; expected samples 1 + (1 - p) + ... + (1 - p)^(k - 1)."""
    miss = 1.0 - p
    return 1.0 - miss**k, float(sum(miss**j for j in range(k)))


def rejection_cost_cases():
    return [(0.5, 4), (0.9, 4), (0.1, 8), (0.0, 3), (1.0, 5), (0.3, 1)]


REJECTION_COST_MISTAKES = {
    "sampling stops at the first right answer: the expected count is below k":
        lambda p, k: (1.0 - (1.0 - p) ** k, float(k)),
    "acceptance is 1 - (1 - p)^k, the chance that not all k samples miss, not k p":
        lambda p, k: (min(1.0, k * p), rejection_cost(p, k)[1]),
    "at most k samples are drawn: 1 / p is the count without a budget":
        lambda p, k: (rejection_cost(p, k)[0], 1.0 / p if p > 0 else float("inf")),
}


# 13.2 The filter: keep the first right answer.

def keep_first_right(replies, answer):
    """The first of replies (the teacher's samples for one problem, in order) whose final
    integer is answer, or None when none is."""
    return next((r for r in replies if extract_answer(r) == str(answer)), None)


def keep_first_right_cases():
    right = "12 + 9: 2 + 9 = 11, write 1 carry 1. 1 + 0 + 1 = 2, write 21. Answer: 21"
    slip = "12 + 9: 2 + 9 = 11, write 1. 1 + 0 = 1, write 11. Answer: 11"
    other = "12 + 9: 2 + 9 = 11, write 1 carry 1. 1 + 1 = 2, write 21. Answer: 21"
    return [([slip, right, other], 21), ([other, right], 21), ([slip, slip], 21),
            ([right], 21), ([slip, "Answer: 210", right], 21), ([], 21)]


KEEP_MISTAKES = {
    "keep the FIRST right reply: later ones cost samples we did not need":
        lambda replies, answer: next((r for r in reversed(replies)
                                      if extract_answer(r) == str(answer)), None),
    "keep only replies whose final integer is the answer; return None when none is":
        lambda replies, answer: replies[0] if replies else None,
    "compare the final integer, not a substring (\"210\" contains \"21\")":
        lambda replies, answer: next((r for r in replies if str(answer) in r), None),
}


# 13.3 Token-level distillation: match the teacher's whole distribution.

def distillation_loss(student_logits, teacher_logits, mask):
    """KL(teacher || student) per token, sum over the vocabulary of p_t (log p_t - log
    p_s), averaged over the positions where mask is 1. Logits (N, T, V), mask (N, T)."""
    return token_distillation_loss(student_logits, teacher_logits, mask)


def distillation_loss_cases():
    with seeded(13):
        cases = []
        for N, T, V in ((2, 3, 5), (3, 6, 11), (1, 4, 7)):
            mask = (torch.rand(N, T) > 0.3).float()
            mask[:, 0] = 1
            cases.append((torch.randn(N, T, V) * 2, torch.randn(N, T, V) * 2, mask))
    return cases


def _kl(student, teacher, mask, reverse=False, masked=True):
    log_s, log_t = student.log_softmax(-1), teacher.log_softmax(-1)
    if reverse:
        per_token = (log_s.exp() * (log_s - log_t)).sum(-1)
    else:
        per_token = (log_t.exp() * (log_t - log_s)).sum(-1)
    if not masked:
        return per_token.mean()
    return (per_token * mask).sum() / mask.sum()


DISTILLATION_MISTAKES = {
    "KL(teacher || student): weigh by the teacher's probabilities, p_t (log p_t - log p_s)":
        lambda s, t, m: _kl(s, t, m, reverse=True),
    "average over the answer tokens only (mask == 1)":
        lambda s, t, m: _kl(s, t, m, masked=False),
    "that is cross-entropy against the teacher's argmax (sequence-level), not its "
    "distribution": lambda s, t, m: (torch.nn.functional.cross_entropy(
        s.flatten(0, 1), t.argmax(-1).flatten(), reduction="none") * m.flatten()).sum() / m.sum(),
}


EXERCISES = [
    Exercise("13.1", "the cost of rejection sampling", rejection_cost_cases, rejection_cost,
             REJECTION_COST_MISTAKES),
    Exercise("13.2", "keep the first right answer", keep_first_right_cases, keep_first_right,
             KEEP_MISTAKES),
    Exercise("13.3", "the token-level distillation loss", distillation_loss_cases,
             distillation_loss, DISTILLATION_MISTAKES),
]
