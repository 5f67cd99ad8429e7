"""Chapter 10's exercises: the arithmetic intensity of a matmul, the attention FLOPs per
cached token of MLA's cache layouts, speculative sampling's acceptance rule, and the
balanced packing of experts onto GPUs."""

import torch

from minids.config import ModelConfig
from minids.eplb import pack
from minids.exercises.checker import Exercise
from minids.exercises.common import DEEPSEEK_V3, seeded
from minids.generate import verify_draft
from minids.inference import attention_flops_per_cached_token, matmul_intensity

# 10.1 Arithmetic intensity: prefill is compute-bound, decoding memory-bound.

def intensity(m, k, n, bytes_per_element):
    """FLOPs per byte of an (m, k) @ (k, n) product, a float: 2 m k n FLOPs over the
    bytes of both inputs and of the output, each moved once."""
    return matmul_intensity(m, k, n, bytes_per_element)


def intensity_cases():
    return [(1, 7168, 18432, 2), (64, 7168, 2048, 2), (4096, 7168, 2048, 1),
            (8, 256, 768, 4), (512, 256, 4096, 4)]


INTENSITY_MISTAKES = {
    "a multiply-add is 2 FLOPs: 2 m k n, not m k n":
        lambda m, k, n, b: matmul_intensity(m, k, n, b) / 2,
    "count the output too: it is written once, m n elements":
        lambda m, k, n, b: 2 * m * k * n / (b * (m * k + k * n)),
    "bytes, not elements: multiply the element counts by bytes_per_element":
        lambda m, k, n, b: matmul_intensity(m, k, n, 1),
}


# 10.2 Attention FLOPs per cached token, three ways.

def flops_per_cached_token(config, layout):
    """FLOPs (an int) one new query token spends on one cached token in one MLA layer:
    "expanded" (cached per-head keys and values): 2 H qk + 2 H v; "reexpand" (the latent
    up-projected every step): that plus 2 c H (nope + v); "absorbed" (scores over
    [c; k_rope], weighted sum of the c's): 2 H (c + rope) + 2 H c. H heads, qk = nope +
    rope, c = kv_lora_rank."""
    return attention_flops_per_cached_token(config, layout)


def flops_per_cached_token_cases():
    book, v3 = ModelConfig.preset("book"), ModelConfig(**DEEPSEEK_V3)
    return [(config, layout) for config in (book, v3)
            for layout in ("expanded", "reexpand", "absorbed")]


def _flops(config, layout, values_too=True, absorb_sum=True, up_both=True):
    c = config
    H, qk, v, rank, rope, nope = (c.num_attention_heads, c.qk_head_dim, c.v_head_dim,
                                  c.kv_lora_rank, c.qk_rope_head_dim, c.qk_nope_head_dim)
    keys_values = 2 * H * qk + (2 * H * v if values_too else 0)
    if layout == "expanded":
        return keys_values
    if layout == "reexpand":
        return keys_values + 2 * rank * H * (nope + v if up_both else nope)
    return 2 * H * (rank + rope) + (2 * H * rank if absorb_sum else 0)


FLOPS_MISTAKES = {
    "attention also sums the values: p v costs 2 H v per cached token":
        lambda c, way: _flops(c, way, values_too=False),
    "the absorbed path's weighted sum runs over the latents: 2 H c more":
        lambda c, way: _flops(c, way, absorb_sum=False),
    "re-expanding makes keys AND values: W_UKV has H (nope + v) rows":
        lambda c, way: _flops(c, way, up_both=False),
}


# 10.3 Speculative sampling: keep the draft, or draw from what it missed.

def keep_or_resample(p, q, draft, u):
    """(kept, dist) for a draft ~ q and u ~ U(0, 1): kept is u < p[draft] / q[draft] (a
    bool), and then dist is one-hot at draft; else dist = max(0, p - q), renormalised."""
    return verify_draft(p, q, draft, u)


def keep_or_resample_cases():
    with seeded(10):
        cases = []
        for u in (0.05, 0.5, 0.95):
            p, q = torch.randn(2, 12).mul(2).softmax(-1)
            for draft in (int(q.argmax()), int(q.argmin()), int(p.argmax())):
                cases.append((p, q, draft, u))
        return cases


def _keep(p, q, draft, u, flip=False, renormalise=True, ratio_qp=False):
    ratio = q[draft] / p[draft] if ratio_qp else p[draft] / q[draft]
    kept = bool(u > ratio) if flip else bool(u < ratio)
    if kept:
        return True, torch.nn.functional.one_hot(torch.tensor(draft), len(p)).to(p.dtype)
    residual = (p - q).clamp(min=0)
    return False, residual / residual.sum() if renormalise else residual


KEEP_MISTAKES = {
    "keep the draft when u < p / q (likely when the main model likes it), not u > p / q":
        lambda *a: _keep(*a, flip=True),
    "the ratio is p[draft] / q[draft]: the main model's probability over the drafter's":
        lambda *a: _keep(*a, ratio_qp=True),
    "renormalise max(0, p - q) so it sums to 1": lambda *a: _keep(*a, renormalise=False),
    "a rejected draft is replaced by a draw from max(0, p - q), not from p":
        lambda p, q, d, u: (True, verify_draft(p, q, d, u)[1]) if verify_draft(p, q, d, u)[0]
        else (False, p),
}


# 10.4 Balanced packing: spread the expert copies over the GPUs.

def balanced_packing(weights, n_gpus):
    """The GPU (int64, (n_items,)) of each item: every GPU gets len(weights) // n_gpus
    items; take the items heaviest first (ties: lower index first) and put each on the
    GPU with the smallest total so far among those with room (ties: lower GPU first)."""
    return pack(weights, n_gpus)


def balanced_packing_cases():
    with seeded(11):
        return [(torch.tensor([8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]), 2),
                (torch.rand(16) ** 3 * 100, 4),
                (torch.rand(24) * 10, 8),
                (torch.tensor([100.0, 1.0, 1.0, 1.0, 1.0, 1.0]), 3)]


def _greedy(weights, n_gpus, room=True, heaviest_first=True):
    per_gpu, gpu_of = len(weights) // n_gpus, torch.empty(len(weights), dtype=torch.long)
    totals, filled = [0.0] * n_gpus, [0] * n_gpus
    order = torch.argsort(weights, descending=heaviest_first, stable=True).tolist()
    for item in order:
        open_gpus = [g for g in range(n_gpus) if filled[g] < per_gpu or not room]
        gpu = min(open_gpus, key=totals.__getitem__)
        gpu_of[item] = gpu
        totals[gpu] += weights[item].item()
        filled[gpu] += 1
    return gpu_of


PACKING_MISTAKES = {
    "every GPU holds the same number of copies (its memory is sized for them): skip a GPU "
    "that is full": lambda w, n: _greedy(w, n, room=False),
    "place the heaviest items first: the light ones then fill the gaps":
        lambda w, n: _greedy(w, n, heaviest_first=False),
    "that is the contiguous layout (items in order, a block per GPU), not balanced packing":
        lambda w, n: torch.arange(len(w)) // (len(w) // n),
}


EXERCISES = [
    Exercise("10.1", "arithmetic intensity", intensity_cases, intensity, INTENSITY_MISTAKES,
             rtol=1e-9, atol=0.0),
    Exercise("10.2", "attention FLOPs per cached token", flops_per_cached_token_cases,
             flops_per_cached_token, FLOPS_MISTAKES),
    Exercise("10.3", "the acceptance rule", keep_or_resample_cases, keep_or_resample,
             KEEP_MISTAKES),
    Exercise("10.4", "balanced packing", balanced_packing_cases, balanced_packing,
             PACKING_MISTAKES),
]
