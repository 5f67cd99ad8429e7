"""Chapter 03's exercises: MLA's attention, naive and absorbed, the latent cache and the
GQA cache."""

import torch

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.exercises.common import DEEPSEEK_V3, meta_model, randn, seeded
from minids.gqa import GQA
from minids.mla import MLA, causal_mask

# 03.1 and 03.2 MLA's attention from the cached latents, naive and absorbed.

def attend_naive(mla, q_nope, q_rope, latent, k_rope):
    """mla, an MLA layer (its weights); q_nope (B, T, H, d_h) and q_rope (B, T, H, d_r),
    the queries of the T newest positions; latent (B, S, d_c) and k_rope (B, S, d_r), the
    cache of all S >= T positions -> (B, T, H, d_v): causal attention over keys and values
    rebuilt from the latents with W_UK and W_UV (MLA.attend_naive)."""
    with torch.no_grad():
        return mla.attend_naive(q_nope, q_rope, latent, k_rope)


def attend_absorbed(mla, q_nope, q_rope, latent, k_rope):
    """The same attention with W_UK folded into the query and W_UV applied after the
    weighted sum of the latents, so no key or value is rebuilt (MLA.attend_absorbed)."""
    with torch.no_grad():
        return mla.attend_absorbed(q_nope, q_rope, latent, k_rope)


def attention_cases():
    """A prefill (T = S), a decoding step (T = 1) and a two-token continuation (T < S)."""
    cases = []
    for seed, (preset, T, S) in enumerate((("tiny", 5, 5), ("book", 1, 7), ("book", 2, 6))):
        config = ModelConfig.preset(preset)
        H, d_h, d_r = config.num_attention_heads, config.qk_nope_head_dim, config.qk_rope_head_dim
        with seeded(seed):
            mla = MLA(config).requires_grad_(False)
            cases.append((mla, randn(2, T, H, d_h), randn(2, T, H, d_r),
                          randn(2, S, config.kv_lora_rank), randn(2, S, d_r)))
    return cases


def _attention(mla, q_nope, q_rope, latent, k_rope, mask="causal", scale=None, rope=True):
    """Naive attention with one thing changed, for the mistakes: the mask ("causal",
    "top-left" or None), the softmax scale, or no rope part in the score."""
    w_uk, w_uv = mla.up_projections()
    k_nope = torch.einsum("hdc,bsc->bshd", w_uk, latent)
    v = torch.einsum("hvc,bsc->bshv", w_uv, latent)
    scores = torch.einsum("bthd,bshd->bhts", q_nope, k_nope)
    if rope:
        scores = scores + torch.einsum("bthr,bsr->bhts", q_rope, k_rope)
    scores = scores * (mla.softmax_scale if scale is None else scale)
    T, S = q_nope.shape[1], latent.shape[1]
    if mask is not None:
        allowed = causal_mask(T, S) if mask == "causal" else torch.ones(T, S).tril().bool()
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhts,bshv->bthv", scores.softmax(-1), v)


ATTENTION_MISTAKES = {
    "mask the future: query t may see key s only when s <= t":
        lambda *args: _attention(*args, mask=None),
    "the T queries are the last T of the S positions: query i sees keys j <= S - T + i "
    "(exercise 02.4's mask)": lambda *args: _attention(*args, mask="top-left"),
    "scale the scores by mla.softmax_scale, (d_h + d_r)^-1/2: a score is a dot product of "
    "d_h + d_r numbers": lambda mla, *args: _attention(mla, *args,
                                                      scale=mla.nope_dim ** -0.5),
    "a score has two parts: add q_rope . k_rope, the position part, to q_nope . k_nope":
        lambda *args: _attention(*args, rope=False),
}


# 03.3 The latent cache: bytes per token, all layers.

def latent_cache_bytes(config, bytes_per_number):
    """The bytes one token adds to the decoding cache of every layer of the main model,
    when each cached number takes bytes_per_number bytes."""
    dtype = {4: torch.float32, 2: torch.bfloat16, 1: torch.float8_e4m3fn}[bytes_per_number]
    return meta_model(config.to_json()).to(dtype).new_cache(1, 1).nbytes_per_token()


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


# 03.4 The cache of grouped-query attention, per token and layer.

def gqa_cache_numbers(config):
    """How many numbers one token adds to one layer's cache under grouped-query attention
    (config.attention == "gqa"): the keys and the values of its key/value heads."""
    with torch.device("meta"):
        shapes = GQA(config).cache_shapes()
    return sum(torch.Size(shape).numel() for shape in shapes)


def gqa_cache_cases():
    configs = [ModelConfig.preset("book", attention="gqa", num_key_value_heads=kv_heads)
               for kv_heads in (None, 2, 1)]
    configs.append(ModelConfig.preset("small", attention="gqa", num_key_value_heads=2))
    return [(config,) for config in configs]


def _kv_width(c):
    return c.n_kv_heads * (c.hidden_size // c.num_attention_heads)


GQA_CACHE_MISTAKES = {
    "cache the keys AND the values: two tensors per token": _kv_width,
    "only the n_kv_heads key/value heads are cached (config.n_kv_heads), not every "
    "query head": lambda c: 2 * c.hidden_size,
    "a GQA head is hidden_size / num_attention_heads wide (config.head_dim); "
    "qk_nope_head_dim is MLA's": lambda c: 2 * c.n_kv_heads * c.qk_nope_head_dim,
    "that is per layer times num_hidden_layers; the question is one layer":
        lambda c: 2 * _kv_width(c) * c.num_hidden_layers,
}


EXERCISES = [
    Exercise("03.1", "MLA attention, naive", attention_cases, attend_naive,
             ATTENTION_MISTAKES),
    Exercise("03.2", "MLA attention, absorbed", attention_cases, attend_absorbed,
             ATTENTION_MISTAKES),
    Exercise("03.3", "latent cache bytes per token", latent_cache_cases, latent_cache_bytes,
             LATENT_CACHE_MISTAKES),
    Exercise("03.4", "GQA cache per token and layer", gqa_cache_cases,
             gqa_cache_numbers, GQA_CACHE_MISTAKES),
]
