"""Chapter 02's exercises: RMSNorm, RoPE, SwiGLU and the causal mask."""

import torch
import torch.nn.functional as F

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.layers import MLP, RMSNorm
from minids.mla import causal_mask
from minids.rope import apply_rope, rope_cos_sin, rope_inv_freq

# 02.1 RMSNorm.

def rmsnorm(x, weight, eps):
    """x (..., dim), weight (dim,) -> x / sqrt(mean(x^2 over dim) + eps) * weight."""
    norm = RMSNorm(x.shape[-1], eps)
    with torch.no_grad():
        norm.weight.copy_(weight)
        return norm(x)


def rmsnorm_cases():
    with seeded(1):
        return [
            (randn(2, 5, 16), 1 + randn(16, scale=0.1), 1e-6),
            (randn(3, 64, scale=100.0), 1 + randn(64, scale=0.1), 1e-5),
            (randn(4, 8, scale=0.1), 1 + randn(8, scale=0.1), 0.5),  # here eps matters
        ]


def mean_square(x):
    return x.pow(2).mean(-1, keepdim=True)


RMSNORM_MISTAKES = {
    "RMSNorm does not subtract the mean (that is LayerNorm)":
        lambda x, w, eps: (x - x.mean(-1, keepdim=True))
        / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * w,
    "divide by the square root of mean(x^2) + eps":
        lambda x, w, eps: x / (mean_square(x) + eps) * w,
    "eps goes inside the square root: sqrt(mean(x^2) + eps)":
        lambda x, w, eps: x / (mean_square(x).sqrt() + eps) * w,
    "multiply by weight at the end": lambda x, w, eps: x / torch.sqrt(mean_square(x) + eps),
    "average the squares over the last dim only (dim=-1, keepdim=True)":
        lambda x, w, eps: x / torch.sqrt(x.pow(2).mean() + eps) * w,
}


# 02.2 RoPE: rotate interleaved pairs (x_2i, x_2i+1) by their angles.

def rotate_pairs(x, cos, sin):
    """x (..., dim); cos, sin (..., dim/2) broadcasting against x's pairs -> x rotated."""
    return apply_rope(x, cos, sin)


def rotate_pairs_cases():
    with seeded(2):
        cos, sin = rope_cos_sin(6, rope_inv_freq(8, 10000.0))  # (6, 4) each
        heads_cos, heads_sin = rope_cos_sin(5, rope_inv_freq(16, 10000.0))  # (5, 8)
        angles = randn(3, 2, scale=3.0)
        return [
            (randn(2, 6, 8), cos, sin),  # (B, T, dim)
            (randn(1, 5, 3, 16), heads_cos[:, None], heads_sin[:, None]),  # (B, T, H, dim)
            (randn(3, 4), angles.cos(), angles.sin()),
        ]


def rotate_halves(x, cos, sin):
    first, second = x.chunk(2, dim=-1)
    return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)


ROTATE_PAIRS_MISTAKES = {
    "DeepSeek rotates neighbouring pairs (x[..., 0::2], x[..., 1::2]), not the two halves "
    "of the vector": rotate_halves,
    "that is the rotation by minus the angle: the new even entry is "
    "x_even * cos - x_odd * sin": lambda x, cos, sin: apply_rope(x, cos, -sin),
    "flatten the pairs back into the last dim": lambda x, cos, sin:
        apply_rope(x, cos, sin).unflatten(-1, (-1, 2)),
}


# 02.3 SwiGLU.

def swiglu(x, w1, w2, w3):
    """x (..., dim); w1, w3 (inter, dim); w2 (dim, inter) -> w2 (silu(w1 x) * (w3 x))."""
    mlp = MLP(x.shape[-1], w1.shape[0])
    with torch.no_grad():
        for linear, weight in ((mlp.w1, w1), (mlp.w2, w2), (mlp.w3, w3)):
            linear.weight.copy_(weight)
        return mlp(x)


def swiglu_cases():
    with seeded(3):
        return [
            (randn(2, 3, 8), randn(12, 8, scale=0.3), randn(8, 12, scale=0.3),
             randn(12, 8, scale=0.3)),
            (randn(5, 16), randn(40, 16, scale=0.2), randn(16, 40, scale=0.2),
             randn(40, 16, scale=0.2)),
        ]


SWIGLU_MISTAKES = {
    "silu goes on the gate w1 x; w3 x is the linear branch":
        lambda x, w1, w2, w3: (x @ w1.T * F.silu(x @ w3.T)) @ w2.T,
    "SwiGLU's gate is silu(z) = z * sigmoid(z), not sigmoid(z)":
        lambda x, w1, w2, w3: (torch.sigmoid(x @ w1.T) * (x @ w3.T)) @ w2.T,
}


# 02.4 The causal mask, when the queries are the last T of S positions (decoding).

def mask(n_queries, n_keys):
    """(n_queries, n_keys) bool: True where query i may attend to key j."""
    return causal_mask(n_queries, n_keys)


def mask_cases():
    return [(4, 4), (1, 7), (3, 8)]


MASK_MISTAKES = {
    "the T queries are the last T of the S positions: query i sees keys j <= S - T + i":
        lambda t, s: torch.ones(t, s, dtype=torch.bool).tril(),
    "True means 'may attend'": lambda t, s: ~causal_mask(t, s),
    "a token also attends to itself (the diagonal)":
        lambda t, s: torch.ones(t, s, dtype=torch.bool).tril(s - t - 1),
}


EXERCISES = [
    Exercise("02.1", "RMSNorm", rmsnorm_cases, rmsnorm, RMSNORM_MISTAKES),
    Exercise("02.2", "RoPE on interleaved pairs", rotate_pairs_cases, rotate_pairs,
             ROTATE_PAIRS_MISTAKES),
    Exercise("02.3", "SwiGLU", swiglu_cases, swiglu, SWIGLU_MISTAKES),
    Exercise("02.4", "causal mask with a cache", mask_cases, mask, MASK_MISTAKES),
]
