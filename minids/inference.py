"""What a decoding step costs (chapter 10): the bytes and FLOPs of attention per cached
token for MLA's three cache layouts, and arithmetic intensity.

A decoding step reads every cached token of every layer once, for one new query token.
MLA can keep its cache three ways:

- "expanded": per-head keys (nope + rope) and values, as DeepSeek's reference code does
  with attn_impl="naive";
- "reexpand": the latent c and the rope key, up-projected into keys and values again at
  every step (minids' naive path over its latent cache; transformers' DeepseekV3 too);
- "absorbed": the latent and the rope key, attended directly with W_UK folded into the
  query and W_UV applied after the weighted sum (DeepSeek's attn_impl="absorb").

Counts are per layer and per new token; FLOPs count a multiply-add as 2. What does not
grow with the context (the projections of the new token) is left out.
"""

from minids.config import ModelConfig

CACHE_LAYOUTS = ("expanded", "reexpand", "absorbed")


def _check(layout: str):
    if layout not in CACHE_LAYOUTS:
        raise ValueError(f"cache layout must be one of {CACHE_LAYOUTS}, got {layout!r}")


def cache_elements_per_token(config: ModelConfig, layout: str) -> int:
    """Numbers cached per token and layer: H (nope + rope + v) expanded, else c + rope."""
    _check(layout)
    c = config
    if layout == "expanded":
        return c.num_attention_heads * (c.qk_head_dim + c.v_head_dim)
    return c.kv_lora_rank + c.qk_rope_head_dim


def attention_flops_per_cached_token(config: ModelConfig, layout: str) -> int:
    """FLOPs a new query token spends on each cached token in one layer: scores and the
    weighted sum, plus (reexpand) the up-projection of that token's latent."""
    _check(layout)
    c = config
    H, qk, v, rank, rope = (c.num_attention_heads, c.qk_head_dim, c.v_head_dim,
                            c.kv_lora_rank, c.qk_rope_head_dim)
    over_keys_and_values = 2 * H * qk + 2 * H * v  # q . k and p * v for every head
    if layout == "expanded":
        return over_keys_and_values
    if layout == "reexpand":
        return over_keys_and_values + 2 * rank * H * (c.qk_nope_head_dim + v)  # W_UKV c
    return 2 * H * (rank + rope) + 2 * H * rank  # scores on [c; k_rope], sum of the c's


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte read or written: below the machine's peak FLOP/s over its memory
    bandwidth (the ridge point), a kernel waits on memory; above it, on arithmetic."""
    if bytes_moved <= 0:
        raise ValueError(f"arithmetic_intensity: bytes_moved must be > 0, got {bytes_moved}")
    return flops / bytes_moved


def matmul_intensity(m: int, k: int, n: int, bytes_per_element: int = 2) -> float:
    """An (m, k) @ (k, n) product: 2 m k n FLOPs over reading both inputs and writing
    the output once. Prefill (m = many tokens) is high; decoding (m = batch) is low."""
    return arithmetic_intensity(2 * m * k * n, bytes_per_element * (m * k + k * n + m * n))
