"""DeepSeekMoE with auxiliary-loss-free load balancing (REFERENCE §2, §3).

A token's FFN output is the sum of one or more always-on *shared* experts and the
gate-weighted outputs of the K routed experts its router picks out of N small ones.

Routing: affinities s_i = sigmoid(u . e_i). A per-expert bias b (a buffer, never trained
by gradient) is added to s only to *choose* experts, first the best topk_group groups
(a group scores the sum of its two best), then the top K experts inside them. The gate
weights come from the unbiased s of the chosen experts, normalised and scaled. After each
training step the sign rule nudges b up for underloaded experts and down for overloaded
ones. A tiny sequence-wise loss guards against imbalance inside single sequences.
"""

import torch
import torch.nn.functional as F
from torch import nn

from minids.config import ModelConfig
from minids.fp8 import fp8_linear
from minids.layers import MLP


class Router(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_experts, self.top_k = config.n_routed_experts, config.num_experts_per_tok
        self.n_group, self.topk_group = config.n_group, config.topk_group
        self.routed_scaling_factor = config.routed_scaling_factor
        self.norm_topk_prob = config.norm_topk_prob
        self.weight = nn.Parameter(torch.empty(self.n_experts, config.hidden_size))  # e_i
        self.register_buffer("bias", torch.zeros(self.n_experts))  # b: selection only
        # Tokens sent to each expert: since the last bias update (training forwards only),
        # and in the last forward. Integer counts, so a cast of the model leaves them exact.
        self.register_buffer("load", torch.zeros(self.n_experts, dtype=torch.long), persistent=False)
        self.register_buffer("last_load", torch.zeros_like(self.load), persistent=False)

    def _apply(self, fn, recurse=True):
        """Casting the model (model.to(torch.bfloat16)) leaves the bias in fp32, as
        DeepSeek's and transformers' code keep it: in bf16 a step of gamma = 0.001 on a
        bias near 0.3 rounds to 0 or to twice its size. Device moves apply as usual."""
        bias = self.bias
        super()._apply(fn, recurse)
        if bias.dtype == torch.float32 and self.bias.dtype != torch.float32:
            self.bias = bias.to(device=self.bias.device)  # the fp32 values, not a round trip
        return self

    def affinities(self, x: torch.Tensor) -> torch.Tensor:
        """s = sigmoid(x e^T) in fp32 (or fp64), under bf16 autocast too (V3 keeps the
        gating in high precision): (N, hidden) -> (N, n_experts)."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.to(dtype), self.weight.to(dtype)).sigmoid()

    def select(self, scores: torch.Tensor) -> torch.Tensor:
        """Group-limited top-k on the biased scores: (N, n_experts) -> indices (N, top_k)."""
        biased = scores + self.bias
        if self.n_group > 1:
            N = biased.shape[0]
            grouped = biased.view(N, self.n_group, -1)  # (N, n_group, experts per group)
            group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)  # (N, n_group)
            kept = group_scores.topk(self.topk_group, dim=-1).indices  # (N, topk_group)
            keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, kept, True)
            biased = grouped.masked_fill(~keep[..., None], float("-inf")).view(N, -1)
        return biased.topk(self.top_k, dim=-1).indices

    def forward(self, x: torch.Tensor):
        """x (N, hidden) -> gate weights (N, K), expert indices (N, K), affinities (N, E)."""
        scores = self.affinities(x)
        indices = self.select(scores)
        weights = scores.gather(1, indices)  # unbiased: the bias never reaches the output
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights * self.routed_scaling_factor
        counts = torch.bincount(indices.flatten(), minlength=self.n_experts)
        self.last_load = counts
        if self.training:
            self.load += counts
        return weights.type_as(x), indices, scores

    @torch.no_grad()
    def update_bias(self, gamma: float) -> torch.Tensor:
        """The sign rule over the tokens seen since the last call: b_i += gamma * sign(mean - c_i).
        Returns the load it used and starts counting afresh."""
        load = self.load.float()
        self.bias += gamma * torch.sign(load.mean() - load)
        self.load.zero_()
        return load


class Experts(nn.Module):
    """N routed SwiGLU experts as 3-D weights (expert, out, in), applied by sorting the
    (token, expert) assignments by expert and running one matmul per expert."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        E, H, I = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.w1 = nn.Parameter(torch.empty(E, I, H))  # gate
        self.w2 = nn.Parameter(torch.empty(E, H, I))  # down
        self.w3 = nn.Parameter(torch.empty(E, I, H))  # up
        self.fp8_format = None  # set by fp8.convert_to_fp8: the expert GEMMs then run in FP8
        self.fp8_cache = False  # ... keeping their inputs for the backward in FP8

    def linear(self, x, weight):
        if self.fp8_format is None:
            return F.linear(x, weight)
        return fp8_linear(x, weight, self.fp8_format, cache_fp8=self.fp8_cache)

    def forward(self, x, weights, indices):
        """x (N, H), weights and indices (N, K) -> sum_k weights[:, k] * FFN_indices[:, k](x)."""
        K = indices.shape[1]
        flat = indices.flatten()  # (N*K,): the expert of each assignment
        order = flat.argsort(stable=True)  # assignments grouped by expert
        token = order // K  # the token of each sorted assignment
        counts = torch.bincount(flat, minlength=self.w1.shape[0]).tolist()
        chunks = x.index_select(0, token).split(counts)  # one (n_e, H) chunk per expert
        outputs = [  # experts without tokens are skipped: most of them, when decoding
            self.linear(F.silu(self.linear(xe, self.w1[e])) * self.linear(xe, self.w3[e]), self.w2[e])
            for e, xe in enumerate(chunks) if len(xe)
        ]
        y = torch.cat(outputs) * weights.flatten()[order, None]  # (N*K, H)
        return torch.zeros_like(x).index_add_(0, token, y)


class DeepSeekMoE(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate = Router(config)
        self.experts = Experts(config)
        shared_dim = config.moe_intermediate_size * config.n_shared_experts
        self.shared_experts = MLP(config.hidden_size, shared_dim) if shared_dim else None
        self.balance_loss_alpha = config.balance_loss_alpha

    def forward(self, x: torch.Tensor, with_balance: bool = True):
        """x (B, T, H) -> (output (B, T, H), sequence-wise balance loss). No residual here.
        with_balance=False (a forward without targets: decoding) skips the loss and returns 0."""
        B, T, H = x.shape
        flat = x.reshape(B * T, H)
        weights, indices, scores = self.gate(flat)
        y = self.experts(flat, weights, indices)
        if self.shared_experts is not None:
            y = y + self.shared_experts(flat)
        if not with_balance:
            return y.view(B, T, H), x.new_zeros(())
        loss = sequence_balance_loss(scores.view(B, T, -1), self.gate.top_k,
                                     self.balance_loss_alpha)
        return y.view(B, T, H), loss


def sequence_balance_loss(scores: torch.Tensor, top_k: int, alpha: float) -> torch.Tensor:
    """L_Bal = alpha * sum_i f_i P_i per sequence, averaged over the batch (Eq. 17-20).
    scores (B, T, E) are the affinities; f counts the unbiased top-k (no gradient),
    P averages the normalised affinities (the gradient flows through P only)."""
    B, T, E = scores.shape
    if alpha == 0:
        return scores.new_zeros(())
    chosen = scores.detach().topk(top_k, dim=-1).indices.view(B, T * top_k)
    f = torch.zeros(B, E, dtype=scores.dtype, device=scores.device)
    f.scatter_add_(1, chosen, torch.ones_like(chosen, dtype=scores.dtype)).mul_(E / (top_k * T))
    P = (scores / scores.sum(dim=-1, keepdim=True)).mean(dim=1)  # (B, E)
    return alpha * (f * P).sum(dim=-1).mean()


def batch_balance_loss(scores: torch.Tensor, top_k: int, alpha: float) -> torch.Tensor:
    """The auxiliary loss of GShard and Switch: f and P counted over every token of the
    batch at once. scores (N, E) or (B, T, E) affinities -> alpha * sum_i f_i P_i. It lets
    one sequence lean on a few experts as long as the batch as a whole is even."""
    return sequence_balance_loss(scores.reshape(1, -1, scores.shape[-1]), top_k, alpha)


def max_violation(load: torch.Tensor) -> float:
    """MaxVio = (max load - mean load) / mean load; 0 is perfect balance."""
    mean = load.float().mean()
    return float((load.float().max() - mean) / mean) if mean > 0 else 0.0
