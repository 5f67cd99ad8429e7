"""Chapter 04's exercises: group-limited routing."""

import torch

from minids.exercises.checker import Exercise
from minids.exercises.common import randn, router_for, seeded

# 04.1 Group-limited top-k routing.

def group_limited_topk(scores, bias, n_group, topk_group, top_k):
    """scores (N, E) affinities, bias (E,) -> the indices (N, top_k) of the experts each
    token picks: on scores + bias, the best topk_group groups (a group scores the sum of
    its two best), then the best top_k experts inside them. Order does not matter."""
    return router_for(scores.shape[-1], n_group, topk_group, top_k, bias).select(scores)


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


EXERCISES = [
    Exercise("04.1", "group-limited top-k", group_limited_topk_cases, group_limited_topk,
             GROUP_LIMITED_TOPK_MISTAKES, unordered=True),
]
