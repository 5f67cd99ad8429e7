"""Multi-Token Prediction (REFERENCE §4).

Module k (k = 1..D) predicts the token k+1 places ahead. At position i it combines the
previous depth's hidden state h^{k-1}_i with the embedding of the token t_{i+k}:

    h'_i = M_k [RMSNorm(Emb(t_{i+k})) ; RMSNorm(h^{k-1}_i)],   h^k = RMSNorm(TRM_k(h'))

and reads out P(t_{i+k+1}) with the main model's output head. The embedding and the head
are the main model's own modules (the same Parameters), so MTP adds only M_k, one
transformer block and three norms per depth. We concatenate the embedding first, as the
released V3 weights do; h^0 is the main model's final (normalised) hidden state, and each
module's normalised output feeds the next, as transformers' MTP layers do.
"""

import torch
from torch import nn

from minids.config import ModelConfig
from minids.layers import RMSNorm


class MTPModule(nn.Module):
    def __init__(self, config: ModelConfig, block: nn.Module, embed: nn.Embedding, head: nn.Linear):
        super().__init__()
        H, eps = config.hidden_size, config.rms_norm_eps
        self.embed, self.head = embed, head  # shared with the main model, not copies
        self.enorm, self.hnorm = RMSNorm(H, eps), RMSNorm(H, eps)
        self.eh_proj = nn.Linear(2 * H, H, bias=False)  # M_k
        self.block = block  # TRM_k
        self.norm = RMSNorm(H, eps)

    def forward(self, h_prev, next_tokens, cos, sin, cache=None, absorb=False, mask=None):
        """h_prev (B, T, H): h^{k-1} at positions i; next_tokens (B, T): t_{i+k}.
        Returns h^k (B, T, H), logits for t_{i+k+1} (B, T, vocab), the balance loss (0
        when decoding: with a cache, no loss is wanted)."""
        x = torch.cat([self.enorm(self.embed(next_tokens)), self.hnorm(h_prev)], dim=-1)
        x, balance = self.block(self.eh_proj(x), cos, sin, cache, absorb,
                                with_balance=cache is None, mask=mask)
        h = self.norm(x)
        return h, self.head(h), balance
