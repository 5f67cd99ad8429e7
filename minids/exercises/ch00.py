"""Chapter 00's exercises: the greedy next token, the sampling distribution and the
decoding loop."""

import torch

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.generate import generate, sample_next, sampling_probs
from minids.model import MiniDeepSeek

# 00.1 Greedy decoding: the next token is the one with the largest logit.

def next_token(logits):
    """logits (B, vocab) -> the greedy next token of each row, (B,) int64."""
    return sample_next(logits, temperature=0.0)


def next_token_cases():
    with seeded(0):
        return [(randn(1, 10),), (randn(4, 128),), (randn(3, 4096, scale=5.0),)]


# 00.2 Sampling: the probabilities at a temperature, over the top-k tokens.

def temperature_top_k(logits, temperature, top_k):
    """logits (B, vocab), temperature > 0, top_k an int -> (B, vocab) probabilities:
    softmax(logits / temperature) over each row's top_k tokens, 0 for the others."""
    return sampling_probs(logits, temperature, top_k=top_k)


def temperature_top_k_cases():
    with seeded(1):
        return [(randn(2, 10), 1.0, 3), (randn(3, 50, scale=3.0), 0.5, 10),
                (randn(1, 200), 2.0, 200)]


def _probs(logits, temperature, top_k, scale="divide", renormalise=True):
    z = logits * temperature if scale == "multiply" else logits / temperature
    probs = z.softmax(-1)
    kth = z.topk(top_k, dim=-1).values[:, -1:]
    probs = probs.masked_fill(z < kth, 0.0)
    return probs / probs.sum(-1, keepdim=True) if renormalise else probs


TEMPERATURE_TOP_K_MISTAKES = {
    "divide the logits by the temperature: a temperature above 1 flattens the "
    "distribution": lambda z, t, k: _probs(z, t, k, scale="multiply"),
    "the kept tokens' probabilities must sum to 1: mask the other logits with -inf "
    "before the softmax (or renormalise after)":
        lambda z, t, k: _probs(z, t, k, renormalise=False),
    "keep only the top_k most likely tokens; the others get probability 0":
        lambda z, t, k: (z / t).softmax(-1),
}


# 00.3 The decoding loop: feed the text back in, one token at a time.

def greedy_decode(model, input_ids, max_new_tokens):
    """model, a MiniDeepSeek; input_ids (B, T) -> (B, T + max_new_tokens): the prompt
    followed by max_new_tokens greedy tokens, each the argmax of the model's logits at
    the last position (minids.generate at temperature 0)."""
    return generate(model, input_ids, max_new_tokens)


def greedy_decode_cases():
    cases = []
    for seed, (B, T, n) in enumerate(((1, 4, 6), (2, 3, 10))):
        with seeded(seed):
            model = MiniDeepSeek(ModelConfig.preset("tiny")).eval()
            cases.append((model, torch.randint(0, model.config.vocab_size, (B, T)), n))
    return cases


@torch.no_grad()
def _decode_from_first_position(model, input_ids, max_new_tokens):
    tokens = input_ids
    for _ in range(max_new_tokens):
        tokens = torch.cat([tokens, model(tokens).logits[:, 0].argmax(-1, keepdim=True)], 1)
    return tokens


GREEDY_DECODE_MISTAKES = {
    "the next token comes from the logits at the last position, logits[:, -1]":
        _decode_from_first_position,
}


EXERCISES = [
    Exercise("00.1", "greedy next token", next_token_cases, next_token,
             {"the greedy choice is the largest logit": lambda logits: logits.argmin(-1)}),
    Exercise("00.2", "temperature and top-k", temperature_top_k_cases, temperature_top_k,
             TEMPERATURE_TOP_K_MISTAKES),
    Exercise("00.3", "the greedy decoding loop", greedy_decode_cases, greedy_decode,
             GREEDY_DECODE_MISTAKES),
]
