"""The exercises of the chapters: for each, its hidden cases, minids' reference, and the
mistakes worth a hint. A reference calls minids' own code, so a checker is right as long
as the package is, and the package's tests keep it so. (The absorbed query is one line
inside MLA.attend_absorbed; tests/test_exercises.py checks its copy here against MLA.)

An exercise's function signature is its reference's: `check("02.1", rmsnorm)` calls
`rmsnorm(x, weight, eps)` with the arguments of each case.
"""

import functools
import json
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.generate import sample_next
from minids.layers import MLP, RMSNorm
from minids.mla import MLA, causal_mask
from minids.model import IGNORE_INDEX, MiniDeepSeek, cross_entropy
from minids.moe import Router, max_violation
from minids.rope import apply_rope, rope_cos_sin, rope_inv_freq

# DeepSeek-V3 itself (671B parameters) in ModelConfig's terms: the cache-size exercise
# checks a formula at full scale; the model is built on the meta device, without memory.
DEEPSEEK_V3 = dict(
    vocab_size=129280, hidden_size=7168, intermediate_size=18432, num_hidden_layers=61,
    num_attention_heads=128, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
    qk_rope_head_dim=64, v_head_dim=128, moe_intermediate_size=2048, n_routed_experts=256,
    n_shared_experts=1, num_experts_per_tok=8, n_group=8, topk_group=4,
    first_k_dense_replace=3, max_position_embeddings=4096,
)


@contextmanager
def seeded(seed: int):
    """Run a block with the global RNG seeded, and restore the RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale


# 00.1 Greedy decoding: the next token is the one with the largest logit.

def next_token(logits):
    """logits (B, vocab) -> the greedy next token of each row, (B,) int64."""
    return sample_next(logits, temperature=0.0)


def next_token_cases():
    with seeded(0):
        return [(randn(1, 10),), (randn(4, 128),), (randn(3, 4096, scale=5.0),)]


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


# 03.1 The latent cache: bytes per token, all layers.

def latent_cache_bytes(config, bytes_per_number):
    """The bytes one token adds to the decoding cache of every layer of the main model,
    when each cached number takes bytes_per_number bytes."""
    dtype = {4: torch.float32, 2: torch.bfloat16, 1: torch.float8_e4m3fn}[bytes_per_number]
    return meta_model(config.to_json()).to(dtype).new_cache(1, 1).nbytes_per_token()


@functools.cache
def meta_model(config_json: str) -> MiniDeepSeek:
    """The model's shapes without its memory, even at 671B parameters (built in ~1 s)."""
    with torch.device("meta"):
        return MiniDeepSeek(ModelConfig.from_dict(json.loads(config_json)))


def latent_cache_cases():
    return [
        (ModelConfig.preset("tiny"), 4),
        (ModelConfig.preset("book"), 4),
        (ModelConfig.preset("small"), 2),
        (ModelConfig(**DEEPSEEK_V3), 2),
        (ModelConfig(**DEEPSEEK_V3), 1),
    ]


def mha_cache_bytes(c, b):
    return c.num_hidden_layers * c.num_attention_heads * (c.qk_head_dim + c.v_head_dim) * b


LATENT_CACHE_MISTAKES = {
    "each token also caches its rope key (qk_rope_head_dim numbers)":
        lambda c, b: c.num_hidden_layers * c.kv_lora_rank * b,
    "the rope key is shared by all heads: it is cached once per token, not once per head":
        lambda c, b: c.num_hidden_layers * (c.kv_lora_rank + c.num_attention_heads
                                            * c.qk_rope_head_dim) * b,
    "that is MHA's cache (keys and values of every head); MLA caches the latent and the "
    "rope key": mha_cache_bytes,
    "every layer keeps its own cache: multiply by num_hidden_layers":
        lambda c, b: (c.kv_lora_rank + c.qk_rope_head_dim) * b,
    "count bytes, not numbers: multiply by bytes_per_number":
        lambda c, b: c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim),
}


# 03.2 The absorbed query: fold W_UK into q_nope, so scores run over the cached latents.

def absorb_query(q_nope, w_uk):
    """q_nope (B, T, H, nope), w_uk (H, nope, kv_lora_rank) -> (B, T, H, kv_lora_rank):
    per head, W_UK^T q, the query whose dot product with a latent c equals q_nope's dot
    product with the key W_UK c. The contraction of MLA.attend_absorbed."""
    return torch.einsum("bthd,hdc->bthc", q_nope, w_uk)


def absorb_query_cases():
    cases = []
    for seed, preset in enumerate(("tiny", "book")):
        config = ModelConfig.preset(preset)
        with seeded(seed):
            w_uk = MLA(config).up_projections()[0].detach().clone()
            q_nope = randn(2, 3, config.num_attention_heads, config.qk_nope_head_dim)
        cases.append((q_nope, w_uk))
    return cases


# 04.1 Group-limited top-k routing.

def group_limited_topk(scores, bias, n_group, topk_group, top_k):
    """scores (N, E) affinities, bias (E,) -> the indices (N, top_k) of the experts each
    token picks: on scores + bias, the best topk_group groups (a group scores the sum of
    its two best), then the best top_k experts inside them. Order does not matter."""
    return router_for(scores.shape[-1], n_group, topk_group, top_k, bias).select(scores)


def router_for(n_experts, n_group, topk_group, top_k, bias):
    config = ModelConfig.preset("tiny", n_routed_experts=n_experts, n_group=n_group,
                                topk_group=topk_group, num_experts_per_tok=top_k)
    router = Router(config)
    router.bias.copy_(bias)
    return router


def group_limited_topk_cases():
    with seeded(4):
        return [
            (randn(6, 8).sigmoid(), randn(8, scale=0.1), 4, 2, 2),
            (randn(5, 16).sigmoid(), randn(16, scale=0.1), 4, 2, 4),
            (randn(4, 64).sigmoid(), randn(64, scale=0.1), 8, 4, 8),
        ]


def best_group_only(scores, bias, n_group, topk_group, top_k):
    grouped = (scores + bias).view(scores.shape[0], n_group, -1)
    kept = grouped.max(dim=-1).values.topk(topk_group, dim=-1).indices
    keep = torch.zeros(grouped.shape[:2], dtype=torch.bool).scatter_(1, kept, True)
    biased = grouped.masked_fill(~keep[..., None], float("-inf")).flatten(1)
    return biased.topk(top_k, dim=-1).indices


GROUP_LIMITED_TOPK_MISTAKES = {
    "first keep the topk_group best groups, then pick top_k experts inside them":
        lambda s, b, g, tg, k: (s + b).topk(k, dim=-1).indices,
    "the bias steers the choice: rank experts by scores + bias":
        lambda s, b, g, tg, k: group_limited_topk(s, torch.zeros_like(b), g, tg, k),
    "a group scores the sum of its two best experts, not its single best": best_group_only,
}


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


EXERCISES = {e.id: e for e in (
    Exercise("00.1", "greedy next token", next_token_cases, next_token,
             {"the greedy choice is the largest logit": lambda logits: logits.argmin(-1)}),
    Exercise("02.1", "RMSNorm", rmsnorm_cases, rmsnorm, RMSNORM_MISTAKES),
    Exercise("02.2", "RoPE on interleaved pairs", rotate_pairs_cases, rotate_pairs,
             ROTATE_PAIRS_MISTAKES),
    Exercise("02.3", "SwiGLU", swiglu_cases, swiglu, SWIGLU_MISTAKES),
    Exercise("02.4", "causal mask with a cache", mask_cases, mask, MASK_MISTAKES),
    Exercise("03.1", "latent cache bytes per token", latent_cache_cases, latent_cache_bytes,
             LATENT_CACHE_MISTAKES),
    Exercise("03.2", "absorbed query", absorb_query_cases, absorb_query),
    Exercise("04.1", "group-limited top-k", group_limited_topk_cases, group_limited_topk,
             GROUP_LIMITED_TOPK_MISTAKES, unordered=True),
    Exercise("05.1", "sign-rule bias update", update_bias_cases, update_bias,
             UPDATE_BIAS_MISTAKES),
    Exercise("05.2", "MaxVio", max_vio_cases, max_vio, MAX_VIO_MISTAKES),
    Exercise("06.1", "MTP loss of depth k", mtp_loss_cases, mtp_loss, MTP_LOSS_MISTAKES),
)}
