"""Chapter 04's exercises: group-limited routing, the gate weights, the routed experts'
output, the assembled DeepSeekMoE layer, and the parameters of a MoE layer."""

import torch
import torch.nn.functional as F

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.exercises.common import DEEPSEEK_V3, randn, router_for, seeded
from minids.moe import DeepSeekMoE, Experts, Router

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


# 04.2 The gate weights of the chosen experts.

class GivenChoice(Router):
    """A Router told both the affinities and the experts to choose, so that its own
    forward turns them into gate weights."""

    def __init__(self, config, indices):
        super().__init__(config)
        self.indices = indices

    def affinities(self, x):
        return x

    def select(self, scores):
        return self.indices


def gate_weights(scores, bias, indices, routed_scaling_factor):
    """scores (N, E) affinities s, bias (E,) the selection bias b, indices (N, K) the
    experts chosen on s + b -> (N, K) gate weights, in the order of indices:
    s of each chosen expert / the sum of the chosen s * routed_scaling_factor."""
    E = scores.shape[1]
    config = ModelConfig.preset("tiny", hidden_size=E, n_routed_experts=E, n_group=1,
                                topk_group=1, num_experts_per_tok=indices.shape[1],
                                routed_scaling_factor=routed_scaling_factor)
    router = GivenChoice(config, indices)
    router.bias.copy_(bias)
    return router(scores)[0]


def gate_weights_cases():
    with seeded(7):
        cases = []
        for n, e, g, tg, k, factor in ((5, 8, 4, 2, 2, 2.5), (6, 16, 4, 2, 4, 2.5),
                                       (4, 64, 8, 4, 8, 1.0)):
            scores, bias = randn(n, e).sigmoid(), randn(e, scale=0.3)
            indices = router_for(e, g, tg, k, bias).select(scores)
            cases.append((scores, bias, indices, factor))
        return cases


def chosen_sum(s, indices):
    return s.gather(1, indices).sum(-1, keepdim=True)


GATE_WEIGHTS_MISTAKES = {
    "the bias only chooses the experts: the weights come from the unbiased scores s":
        lambda s, b, i, f: (s + b).gather(1, i) / chosen_sum(s + b, i) * f,
    "normalise: divide by the sum of the chosen experts' scores":
        lambda s, b, i, f: s.gather(1, i) * f,
    "normalise over the K chosen experts only, not over all E":
        lambda s, b, i, f: s.gather(1, i) / s.sum(-1, keepdim=True) * f,
    "multiply by routed_scaling_factor after normalising":
        lambda s, b, i, f: s.gather(1, i) / chosen_sum(s, i),
    "DeepSeek-V3 normalises the sigmoid affinities by their sum, not with a softmax":
        lambda s, b, i, f: s.gather(1, i).softmax(-1) * f,
}


# 04.3 The routed experts' output: dispatch the tokens, combine the results.

def routed_experts(x, weights, indices, w1, w2, w3):
    """x (N, H) tokens, weights and indices (N, K) from the router, expert weights
    w1, w3 (E, I, H) and w2 (E, H, I) -> (N, H): for each token n,
    sum over k of weights[n, k] * FFN_e(x[n]) with e = indices[n, k] and
    FFN_e(x) = w2[e] (silu(w1[e] x) * (w3[e] x))."""
    E, I, H = w1.shape
    config = ModelConfig.preset("tiny", hidden_size=H, moe_intermediate_size=I,
                                n_routed_experts=E, n_group=1, topk_group=1,
                                num_experts_per_tok=1)
    experts = Experts(config)
    with torch.no_grad():
        for param, value in ((experts.w1, w1), (experts.w2, w2), (experts.w3, w3)):
            param.copy_(value)
        return experts(x, weights, indices)


def routed_experts_cases():
    with seeded(8):
        cases = []
        for n, e, k, h, i in ((5, 4, 2, 8, 6), (12, 8, 3, 16, 12), (3, 16, 4, 8, 4)):
            indices = torch.rand(n, e).topk(k, dim=-1).indices
            weights = torch.rand(n, k) + 0.1
            cases.append((randn(n, h), weights, indices, randn(e, i, h, scale=0.3),
                          randn(e, h, i, scale=0.3), randn(e, i, h, scale=0.3)))
        return cases


def expert_outputs(x, indices, w1, w2, w3, act=F.silu):
    """(N, K, H): the output of each token's k-th chosen expert."""
    a, b, c = w1[indices], w2[indices], w3[indices]  # (N, K, I, H), (N, K, H, I), ...
    hidden = act(torch.einsum("nkih,nh->nki", a, x)) * torch.einsum("nkih,nh->nki", c, x)
    return torch.einsum("nkhi,nki->nkh", b, hidden)


ROUTED_EXPERTS_MISTAKES = {
    "multiply each expert's output by its gate weight before summing":
        lambda x, g, i, w1, w2, w3: expert_outputs(x, i, w1, w2, w3).sum(1),
    "sum the K weighted outputs; do not average them":
        lambda x, g, i, w1, w2, w3: (g[..., None] * expert_outputs(x, i, w1, w2, w3)).mean(1),
    "every token visits K experts: add the outputs of all of them, not only the first":
        lambda x, g, i, w1, w2, w3: g[:, :1] * expert_outputs(x, i[:, :1], w1, w2, w3)[:, 0],
    "silu goes on the gate w1 x; w3 x is the linear branch":
        lambda x, g, i, w1, w2, w3: (g[..., None] * expert_outputs(x, i, w3, w2, w1)).sum(1),
}


# 04.4 The DeepSeekMoE layer: router, dispatch and shared expert, assembled.

def deepseek_moe(moe, x):
    """moe, a DeepSeekMoE layer (its router moe.gate, routed experts moe.experts and
    shared expert moe.shared_experts, which may be None); x (B, T, H) -> (B, T, H): the
    shared expert's output plus the gate-weighted outputs of each token's routed experts
    (DeepSeekMoE.forward's first value)."""
    with torch.no_grad():
        return moe(x)[0]


def deepseek_moe_cases():
    cases = []
    for seed, overrides in enumerate(({}, {"n_shared_experts": 0},
                                      {"n_routed_experts": 16, "num_experts_per_tok": 4})):
        config = ModelConfig.preset("tiny", **overrides)
        with seeded(seed):
            moe = DeepSeekMoE(config).requires_grad_(False)
            for param in moe.parameters():
                param.normal_(0, 0.3)
            moe.gate.bias.normal_(0, 0.1)
            cases.append((moe, randn(2, 5, config.hidden_size)))
    return cases


def _layer(moe, x, shared=True, groups=True, bias_in_weights=False):
    """The layer with one thing left out or changed, for the mistakes."""
    B, T, H = x.shape
    flat = x.reshape(B * T, H)
    gate = moe.gate
    scores = torch.sigmoid(flat @ gate.weight.T)  # (N, E)
    n_group, topk_group = (gate.n_group, gate.topk_group) if groups else (1, 1)
    indices = group_limited_topk(scores, gate.bias, n_group, topk_group, gate.top_k)
    chosen = (scores + gate.bias * bias_in_weights).gather(1, indices)  # (N, K)
    weights = chosen / chosen.sum(-1, keepdim=True) * gate.routed_scaling_factor
    e = moe.experts
    y = routed_experts(flat, weights, indices, e.w1, e.w2, e.w3)
    if shared and moe.shared_experts is not None:
        y = y + moe.shared_experts(flat)
    return y.view(B, T, H)


DEEPSEEK_MOE_MISTAKES = {
    "add the shared expert's output (moe.shared_experts(x)): every token goes through it":
        lambda moe, x: _layer(moe, x, shared=False),
    "route within the best groups: exercise 04.1's group-limited top-k, with the router's "
    "n_group and topk_group": lambda moe, x: _layer(moe, x, groups=False),
    "the bias only chooses the experts: the gate weights come from the unbiased "
    "affinities (exercise 04.2)": lambda moe, x: _layer(moe, x, bias_in_weights=True),
}


# 04.5 The parameters of one MoE layer: all of them, and those one token uses.

def moe_layer_params(config, active):
    """The parameters of one DeepSeekMoE layer of config (router, shared and routed
    experts); with active=True only those one token uses (num_experts_per_tok of the
    routed experts). An int."""
    with torch.device("meta"):
        layer = DeepSeekMoE(config)
    total = sum(p.numel() for p in layer.parameters())
    per_expert = sum(p[0].numel() for p in layer.experts.parameters())
    idle = config.n_routed_experts - config.num_experts_per_tok
    return total - idle * per_expert if active else total


def moe_layer_params_cases():
    v3 = ModelConfig(**DEEPSEEK_V3)
    book = ModelConfig.preset("book")
    return [(book, False), (book, True), (v3, False), (v3, True),
            (ModelConfig.preset("book", n_shared_experts=2, num_experts_per_tok=2), True)]


def params_formula(c, active, matrices=3, router=True, shared=True, top_k=True):
    expert = matrices * c.hidden_size * c.moe_intermediate_size
    routed = c.num_experts_per_tok if active and top_k else c.n_routed_experts
    return (router * c.n_routed_experts * c.hidden_size
            + shared * c.n_shared_experts * expert + routed * expert)


MOE_LAYER_PARAMS_MISTAKES = {
    "a SwiGLU expert has three matrices (w1, w2, w3), each hidden x moe_intermediate":
        lambda c, a: params_formula(c, a, matrices=2),
    "count the router too: one vector e_i of hidden_size numbers per routed expert":
        lambda c, a: params_formula(c, a, router=False),
    "the shared experts are part of the layer and always active: count them":
        lambda c, a: params_formula(c, a, shared=False),
    "a token uses only num_experts_per_tok of the routed experts":
        lambda c, a: params_formula(c, a, top_k=False),
}


EXERCISES = [
    Exercise("04.1", "group-limited top-k", group_limited_topk_cases, group_limited_topk,
             GROUP_LIMITED_TOPK_MISTAKES, unordered=True),
    Exercise("04.2", "gate weights", gate_weights_cases, gate_weights, GATE_WEIGHTS_MISTAKES),
    Exercise("04.3", "routed experts' output", routed_experts_cases, routed_experts,
             ROUTED_EXPERTS_MISTAKES),
    Exercise("04.4", "the DeepSeekMoE layer", deepseek_moe_cases, deepseek_moe,
             DEEPSEEK_MOE_MISTAKES),
    Exercise("04.5", "MoE layer parameters", moe_layer_params_cases, moe_layer_params,
             MOE_LAYER_PARAMS_MISTAKES),
]
