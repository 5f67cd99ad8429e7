"""Chapter 00's exercise: the greedy next token."""

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.generate import sample_next

# 00.1 Greedy decoding: the next token is the one with the largest logit.

def next_token(logits):
    """logits (B, vocab) -> the greedy next token of each row, (B,) int64."""
    return sample_next(logits, temperature=0.0)


def next_token_cases():
    with seeded(0):
        return [(randn(1, 10),), (randn(4, 128),), (randn(3, 4096, scale=5.0),)]


EXERCISES = [
    Exercise("00.1", "greedy next token", next_token_cases, next_token,
             {"the greedy choice is the largest logit": lambda logits: logits.argmin(-1)}),
]
