"""Chapter 03's exercises: the latent cache, the absorbed query and the GQA cache."""

import torch

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.exercises.common import DEEPSEEK_V3, meta_model, randn, seeded
from minids.gqa import GQA
from minids.mla import MLA

# 03.1 The latent cache: bytes per token, all layers.

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


# 03.3 The cache of grouped-query attention, per token and layer.

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
    Exercise("03.1", "latent cache bytes per token", latent_cache_cases, latent_cache_bytes,
             LATENT_CACHE_MISTAKES),
    Exercise("03.2", "absorbed query", absorb_query_cases, absorb_query),
    Exercise("03.3", "GQA cache per token and layer", gqa_cache_cases,
             gqa_cache_numbers, GQA_CACHE_MISTAKES),
]
