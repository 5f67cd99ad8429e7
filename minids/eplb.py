"""Redundant experts (chapter 10): place a MoE layer's experts on GPUs so that the most
loaded GPU carries as little as possible, as DeepSeek's expert-parallel load balancer
(EPLB) does for V3's serving (report §3.4).

With expert parallelism every GPU holds some of the experts and computes the tokens
routed to them, so a step lasts as long as the busiest GPU. Routing is never perfectly
even: some experts are hot. Two moves even it out:

- replicate: give the hot experts extra copies (V3's prefill deploys 32 redundant
  experts), each copy taking an equal share of its expert's tokens;
- pack: spread the copies over the GPUs, the same number on each, heaviest first onto
  the GPU with the least load so far that still has room.

`place(loads, n_gpus, n_redundant)` does both; `contiguous_loads` is the plain layout
(experts 0..k-1 on GPU 0 and so on) to compare with; `imbalance` is max over mean.
"""

from dataclasses import dataclass

import torch


def replicate(loads: torch.Tensor, n_copies: int) -> torch.Tensor:
    """How many copies (int64, (n_experts,)) each expert gets, n_copies in all: one
    each, then every extra copy to the expert whose load per copy is highest."""
    n_experts = len(loads)
    if n_copies < n_experts:
        raise ValueError(f"replicate: {n_copies} copies cannot hold {n_experts} experts")
    counts = torch.ones(n_experts, dtype=torch.long)
    for _ in range(n_copies - n_experts):
        counts[torch.argmax(loads / counts)] += 1
    return counts


def pack(weights: torch.Tensor, n_gpus: int) -> torch.Tensor:
    """The GPU (int64, (n_items,)) of each item: the same number of items on each GPU,
    heaviest first onto the least loaded GPU that still has room (balanced packing)."""
    if len(weights) % n_gpus:
        raise ValueError(f"pack: {len(weights)} items do not split evenly over {n_gpus} GPUs")
    per_gpu = len(weights) // n_gpus
    gpu_of = torch.empty(len(weights), dtype=torch.long)
    totals, filled = [0.0] * n_gpus, [0] * n_gpus
    for item in torch.argsort(weights, descending=True, stable=True).tolist():
        gpu = min((g for g in range(n_gpus) if filled[g] < per_gpu), key=totals.__getitem__)
        gpu_of[item] = gpu
        totals[gpu] += weights[item].item()
        filled[gpu] += 1
    return gpu_of


@dataclass(frozen=True)
class Placement:
    expert_of_copy: torch.Tensor  # (n_copies,) which expert each physical copy serves
    gpu_of_copy: torch.Tensor  # (n_copies,) where it lives
    gpu_loads: torch.Tensor  # (n_gpus,) tokens each GPU computes

    @property
    def imbalance(self) -> float:
        return imbalance(self.gpu_loads)


def place(loads: torch.Tensor, n_gpus: int, n_redundant: int = 0) -> Placement:
    """Replicate the experts into len(loads) + n_redundant copies (a copy takes an equal
    share of its expert's load) and pack the copies onto n_gpus GPUs."""
    loads = torch.as_tensor(loads, dtype=torch.float64)
    if loads.ndim != 1 or (loads < 0).any():
        raise ValueError("place: loads must be a 1-D tensor of non-negative token counts")
    counts = replicate(loads, len(loads) + n_redundant)
    expert_of_copy = torch.repeat_interleave(torch.arange(len(loads)), counts)
    share = loads[expert_of_copy] / counts[expert_of_copy]  # (n_copies,)
    gpu_of_copy = pack(share, n_gpus)
    gpu_loads = torch.zeros(n_gpus, dtype=torch.float64).index_add_(0, gpu_of_copy, share)
    return Placement(expert_of_copy, gpu_of_copy, gpu_loads)


def contiguous_loads(loads: torch.Tensor, n_gpus: int) -> torch.Tensor:
    """The GPU loads when experts 0..k-1 sit on GPU 0, k..2k-1 on GPU 1, ... (no copies)."""
    loads = torch.as_tensor(loads, dtype=torch.float64)
    if len(loads) % n_gpus:
        raise ValueError(f"{len(loads)} experts do not split evenly over {n_gpus} GPUs")
    return loads.view(n_gpus, -1).sum(1)


def imbalance(gpu_loads: torch.Tensor) -> float:
    """The busiest GPU's load over the mean: 1 is perfectly even."""
    return (gpu_loads.max() / gpu_loads.mean()).item()
