"""Grouped-query attention: the standard attention that MLA is measured against.

n_heads query heads share n_kv_heads key/value heads (n_kv_heads = n_heads is multi-head
attention, MHA; n_kv_heads = 1 is multi-query attention, MQA). Every head is
head_dim = hidden_size / n_heads wide and RoPE turns all of it. The cache keeps the keys
and values: 2 * n_kv_heads * head_dim numbers per token and layer.
"""

import torch
import torch.nn.functional as F
from torch import nn

from minids.cache import LayerCache
from minids.config import ModelConfig
from minids.mla import causal_mask
from minids.rope import apply_rope


class GQA(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.n_heads, self.n_kv_heads, self.head_dim = c.num_attention_heads, c.n_kv_heads, c.head_dim
        self.softmax_scale = c.softmax_scale
        self.wq = nn.Linear(c.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(c.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(c.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, c.hidden_size, bias=False)

    def cache_shapes(self):
        """Per token: the keys and the values of the n_kv_heads heads."""
        return (self.n_kv_heads, self.head_dim), (self.n_kv_heads, self.head_dim)

    def forward(self, x, cos, sin, cache: LayerCache | None = None, absorb: bool = False,
                mask: torch.Tensor | None = None):
        """x (B, T, hidden); cos, sin (T, head_dim/2). `absorb` is MLA's and is ignored;
        mask (B, 1, T, S) as MLA's (default: causal)."""
        B, T, _ = x.shape
        q = apply_rope(self.wq(x).view(B, T, self.n_heads, self.head_dim), cos[:, None], sin[:, None])
        k = apply_rope(self.wk(x).view(B, T, self.n_kv_heads, self.head_dim), cos[:, None], sin[:, None])
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, S, n_kv_heads, head_dim)
        S = k.shape[1]
        group = self.n_heads // self.n_kv_heads  # query heads per key/value head
        k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
        causal = mask is None and T == S and T > 1  # SDPA's own causal mask
        if mask is None and T not in (1, S):
            mask = causal_mask(T, S, q.device)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),  # (B, heads, T|S, head_dim)
            attn_mask=mask, is_causal=causal, scale=self.softmax_scale,
        )
        return self.wo(out.transpose(1, 2).flatten(2))  # (B, T, hidden)
