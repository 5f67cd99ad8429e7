"""Redundant experts: copies go to the hottest experts, every GPU holds as many copies,
no token is lost, and the busiest GPU carries less than in the plain layout."""

import pytest
import torch

from minids.eplb import contiguous_loads, imbalance, pack, place, replicate


def test_extra_copies_go_to_the_expert_with_the_most_load_per_copy():
    counts = replicate(torch.tensor([90.0, 10.0, 40.0, 20.0]), 7)
    assert counts.tolist() == [3, 1, 2, 1]  # 90 -> 45 -> 30 per copy, then 40 -> 20
    assert replicate(torch.tensor([5.0, 5.0]), 2).tolist() == [1, 1]
    with pytest.raises(ValueError, match="cannot hold"):
        replicate(torch.ones(4), 3)


def test_packing_fills_every_gpu_equally_and_balances_the_weights():
    weights = torch.tensor([8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    gpu_of = pack(weights, 2)
    assert torch.bincount(gpu_of).tolist() == [4, 4]
    totals = torch.zeros(2).index_add_(0, gpu_of, weights)
    assert totals.tolist() == [18.0, 18.0]
    with pytest.raises(ValueError, match="split evenly"):
        pack(torch.ones(5), 2)


def test_placing_keeps_every_token_and_beats_the_contiguous_layout():
    torch.manual_seed(0)
    loads = torch.rand(64) ** 4 * 1000  # a few hot experts
    before = imbalance(contiguous_loads(loads, 8))
    for redundant in (0, 8, 16):
        placed = place(loads, 8, redundant)
        assert torch.bincount(placed.gpu_of_copy).tolist() == [(64 + redundant) // 8] * 8
        assert torch.bincount(placed.expert_of_copy, minlength=64).min() >= 1
        assert placed.gpu_loads.sum().item() == pytest.approx(loads.sum().item())
        assert placed.imbalance < before
    assert place(loads, 8, 16).imbalance < place(loads, 8, 0).imbalance


def test_even_loads_stay_even_and_bad_loads_are_refused():
    assert place(torch.full((16,), 3.0), 4).imbalance == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-negative"):
        place(torch.tensor([1.0, -2.0]), 1)
    with pytest.raises(ValueError, match="split evenly"):
        contiguous_loads(torch.ones(6), 4)
