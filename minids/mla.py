"""Multi-head Latent Attention (REFERENCE §1).

Keys and values of all heads are compressed into one latent vector c (kv_lora_rank wide)
per token; position enters through a small extra key k_rope shared by every head. The
cache keeps only (c, k_rope): kv_lora_rank + qk_rope_head_dim numbers per token and layer.

Two ways to attend, equal in exact arithmetic:
- naive (training, prefill): up-project c into per-head keys and values, then ordinary
  attention with F.scaled_dot_product_attention;
- absorbed (decoding): fold W_UK into the query and W_UV after the weighted sum, so the
  scores and the sum run directly over the cached latents and nothing is re-expanded.
"""

import torch
import torch.nn.functional as F
from torch import nn

from minids.cache import LayerCache
from minids.config import ModelConfig
from minids.layers import RMSNorm
from minids.rope import apply_rope

LATENT_NORM_EPS = 1e-6  # the q and kv latent norms use 1e-6 in DeepSeek's and HF's code


def causal_mask(n_queries: int, n_keys: int, device=None) -> torch.Tensor:
    """(T, S) bool: query i (the i-th of the last T positions) may see key j <= S - T + i."""
    rows = torch.arange(n_queries, device=device)[:, None] + (n_keys - n_queries)
    return torch.arange(n_keys, device=device)[None, :] <= rows


def document_mask(document_ids: torch.Tensor, n_queries: int) -> torch.Tensor:
    """document_ids (B, S): which document each of the S positions belongs to; the
    queries are the last n_queries positions. Returns (B, 1, T, S) bool: causal, and
    only within the query's own document. Several examples packed in one row then do
    not see each other (V3 §5.1's sample masking); left padding is a document of its own.
    Because RoPE scores depend only on the distance between positions, a document
    attends exactly as it would alone at the start of a row."""
    S = document_ids.shape[1]
    same = document_ids[:, -n_queries:, None] == document_ids[:, None, :]  # (B, T, S)
    return (same & causal_mask(n_queries, S, document_ids.device))[:, None]


class MLA(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.n_heads = c.num_attention_heads
        self.q_lora_rank, self.kv_lora_rank = c.q_lora_rank, c.kv_lora_rank
        self.nope_dim, self.rope_dim, self.v_dim = c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim
        self.softmax_scale = c.softmax_scale
        qk_dim = c.qk_head_dim
        if c.q_lora_rank is None:
            self.wq = nn.Linear(c.hidden_size, self.n_heads * qk_dim, bias=False)
        else:
            self.wq_a = nn.Linear(c.hidden_size, c.q_lora_rank, bias=False)  # W_DQ
            self.q_norm = RMSNorm(c.q_lora_rank, LATENT_NORM_EPS)
            self.wq_b = nn.Linear(c.q_lora_rank, self.n_heads * qk_dim, bias=False)  # W_UQ
        # W_DKV and the rope key in one matrix: output [c (kv_lora_rank) | k_rope (rope_dim)].
        self.wkv_a = nn.Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)
        self.kv_norm = RMSNorm(c.kv_lora_rank, LATENT_NORM_EPS)
        # W_UKV: per head, rows [W_UK (nope_dim) ; W_UV (v_dim)].
        self.wkv_b = nn.Linear(c.kv_lora_rank, self.n_heads * (c.qk_nope_head_dim + c.v_head_dim),
                               bias=False)
        self.wo = nn.Linear(self.n_heads * c.v_head_dim, c.hidden_size, bias=False)

    def cache_shapes(self):
        """Per token: the latent c and the rope key (what `forward` appends to a cache)."""
        return (self.kv_lora_rank,), (self.rope_dim,)

    def forward(self, x, cos, sin, cache: LayerCache | None = None, absorb: bool = False,
                mask: torch.Tensor | None = None):
        """x (B, T, hidden); cos, sin (T, rope_dim/2) for the T new positions.
        With a cache, the new tokens are appended and attend to everything cached.
        mask (B, 1, T, S) bool, if given, says which keys each query sees (document_mask);
        without it, attention is causal."""
        B, T, _ = x.shape
        q = self.wq(x) if self.q_lora_rank is None else self.wq_b(self.q_norm(self.wq_a(x)))
        q = q.view(B, T, self.n_heads, -1)  # (B, T, H, nope + rope)
        q_nope, q_rope = q.split([self.nope_dim, self.rope_dim], dim=-1)
        q_rope = apply_rope(q_rope, cos[:, None], sin[:, None])  # (B, T, H, rope)

        latent, k_rope = self.wkv_a(x).split([self.kv_lora_rank, self.rope_dim], dim=-1)
        latent = self.kv_norm(latent)  # (B, T, kv_lora_rank)
        k_rope = apply_rope(k_rope, cos, sin)  # (B, T, rope): one key for all heads
        if cache is not None:
            latent, k_rope = cache.append(latent, k_rope)  # (B, S, ...), S >= T

        attend = self.attend_absorbed if absorb else self.attend_naive
        masked = () if mask is None else (mask,)  # chapter 03's exercises take no mask
        out = attend(q_nope, q_rope, latent, k_rope, *masked)  # (B, T, H, v_dim)
        return self.wo(out.flatten(2))

    def up_projections(self):
        """W_UK (H, nope, kv_lora_rank) and W_UV (H, v_dim, kv_lora_rank), views of wkv_b."""
        w = self.wkv_b.weight.view(self.n_heads, self.nope_dim + self.v_dim, self.kv_lora_rank)
        return w[:, : self.nope_dim], w[:, self.nope_dim :]

    def attend_naive(self, q_nope, q_rope, latent, k_rope, mask=None):
        B, T, H, _ = q_nope.shape
        S = latent.shape[1]
        kv = self.wkv_b(latent).view(B, S, H, self.nope_dim + self.v_dim)
        k_nope, v = kv.split([self.nope_dim, self.v_dim], dim=-1)
        k = torch.cat([k_nope, k_rope[:, :, None].expand(B, S, H, self.rope_dim)], dim=-1)
        q = torch.cat([q_nope, q_rope], dim=-1)  # (B, T, H, nope + rope)
        causal = mask is None and T == S and T > 1  # SDPA's own causal mask
        if mask is None and T not in (1, S):
            mask = causal_mask(T, S, q.device)
        # SDPA's fused kernels want one head size for q, k and v: pad v with zeros to
        # nope + rope and drop the padding after (the zero columns add nothing).
        v = F.pad(v, (0, q.shape[-1] - self.v_dim))
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),  # (B, H, T|S, dim)
            attn_mask=mask, is_causal=causal, scale=self.softmax_scale,
        )
        return out.transpose(1, 2)[..., : self.v_dim]  # (B, T, H, v_dim)

    def attend_absorbed(self, q_nope, q_rope, latent, k_rope, mask=None):
        """Attention over the cache itself: W_UK folded into the query, W_UV applied after.
        Every product is a batched matmul; the H heads of a query share one latent, so
        they are stacked as H * T rows against it rather than broadcast."""
        B, T, H, _ = q_nope.shape
        S = latent.shape[1]
        w_uk, w_uv = self.up_projections()
        q_latent = q_nope.transpose(1, 2) @ w_uk  # (B, H, T, nope) @ (H, nope, c)
        q_rope = q_rope.transpose(1, 2).reshape(B, H * T, self.rope_dim)  # (B, H*T, rope)
        scores = (q_latent.reshape(B, H * T, -1) @ latent.transpose(1, 2)  # (B, H*T, S)
                  + q_rope @ k_rope.transpose(1, 2)) * self.softmax_scale
        scores = scores.view(B, H, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        elif T > 1:
            scores = scores.masked_fill(~causal_mask(T, S, scores.device), float("-inf"))
        probs = scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
        out_latent = probs.type_as(latent).view(B, H * T, S) @ latent  # (B, H*T, c)
        out = out_latent.view(B, H, T, -1) @ w_uv.transpose(1, 2)  # (B, H, T, v_dim)
        return out.transpose(1, 2)  # (B, T, H, v_dim)
