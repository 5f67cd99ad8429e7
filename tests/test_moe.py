import pytest
import torch
import torch.nn.functional as F

import minids
from minids.moe import (DeepSeekMoE, Router, batch_balance_loss, max_violation,
                        sequence_balance_loss)
from tests.conftest import tiny_config


def make_router(seed=0, **overrides):
    minids.seed(seed)
    router = Router(tiny_config(**overrides))
    torch.nn.init.normal_(router.weight, std=0.5)
    return router


def test_bias_changes_selection_but_never_the_gate_weights():
    router = make_router()
    x = torch.randn(256, router.weight.shape[1])
    _, chosen_before, scores = router(x)
    router.bias.copy_(torch.randn(8) * 0.5)
    weights, chosen, scores_after = router(x)
    assert not torch.equal(chosen, chosen_before)  # selection moved
    torch.testing.assert_close(scores_after, scores)  # affinities untouched
    unbiased = scores.gather(1, chosen)
    expected = unbiased / unbiased.sum(-1, keepdim=True) * router.routed_scaling_factor
    torch.testing.assert_close(weights, expected)  # gates from the unbiased s


def test_gate_weights_sum_to_routed_scaling_factor():
    router = make_router()
    weights, _, _ = router(torch.randn(64, router.weight.shape[1]))
    torch.testing.assert_close(weights.sum(-1), torch.full((64,), 2.5))


def test_without_normalisation_gates_are_scaled_affinities():
    router = make_router(norm_topk_prob=False)
    weights, chosen, scores = router(torch.randn(64, router.weight.shape[1]))
    torch.testing.assert_close(weights, scores.gather(1, chosen) * 2.5)


@pytest.mark.parametrize("n_group,topk_group", [(4, 1), (4, 2), (2, 1)])
def test_selected_experts_span_at_most_topk_group_groups(n_group, topk_group):
    router = make_router(n_group=n_group, topk_group=topk_group)
    router.bias.copy_(torch.randn(8) * 0.3)
    _, chosen, scores = router(torch.randn(512, router.weight.shape[1]))
    groups = chosen // (8 // n_group)
    spans = torch.tensor([len(set(row.tolist())) for row in groups])
    assert spans.max() <= topk_group
    # and the chosen groups are the best by the sum of their top-2 biased scores
    biased = (scores + router.bias).view(512, n_group, -1)
    best = biased.topk(2, dim=-1).values.sum(-1).topk(topk_group, dim=-1).indices
    for row, allowed in zip(groups, best):
        assert set(row.tolist()) <= set(allowed.tolist())


def dense_reference(moe: DeepSeekMoE, x):
    """Every expert on every token, then combined with a (N, E) gate matrix."""
    weights, chosen, _ = moe.gate(x)
    gates = torch.zeros(x.shape[0], moe.gate.n_experts, dtype=x.dtype).scatter(1, chosen, weights)
    ex = moe.experts
    h = F.silu(torch.einsum("nh,eih->nei", x, ex.w1)) * torch.einsum("nh,eih->nei", x, ex.w3)
    outputs = torch.einsum("nei,ehi->neh", h, ex.w2)  # (N, E, H)
    return (gates[..., None] * outputs).sum(1) + moe.shared_experts(x)


def test_vectorised_dispatch_equals_dense_reference():
    minids.seed(0)
    moe = DeepSeekMoE(tiny_config()).double()
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 40, 32, dtype=torch.float64)
    y, _ = moe(x)
    torch.testing.assert_close(y, dense_reference(moe, x.view(-1, 32)).view_as(y), rtol=0, atol=1e-12)
    # gradients flow to every expert that received tokens
    y.sum().backward()
    used = moe.gate.last_load > 0
    assert (moe.experts.w1.grad.flatten(1).abs().sum(1) > 0).eq(used).all()


def test_sign_rule_bias_update():
    router = make_router()
    router.train()
    router(torch.randn(300, router.weight.shape[1]))
    router(torch.randn(100, router.weight.shape[1]))
    load = router.load.float()
    assert load.sum() == 400 * 2  # both forwards, K = 2 each
    before = router.bias.clone()
    used = router.update_bias(0.01)
    torch.testing.assert_close(used, load)
    torch.testing.assert_close(router.bias - before, 0.01 * torch.sign(load.mean() - load))
    assert router.load.sum() == 0  # counting starts afresh


def test_gamma_zero_freezes_bias_and_bias_has_no_gradient():
    router = make_router()
    router.train()
    weights, _, _ = router(torch.randn(64, router.weight.shape[1]))
    weights.sum().backward()
    assert "bias" not in dict(router.named_parameters())
    assert router.bias.grad is None and not router.bias.requires_grad
    before = router.bias.clone()
    router.update_bias(0.0)
    assert torch.equal(router.bias, before)


def test_eval_forwards_do_not_count_towards_the_update():
    router = make_router()
    router.eval()
    router(torch.randn(64, router.weight.shape[1]))
    assert router.load.sum() == 0 and router.last_load.sum() == 128


def test_bias_updates_rebalance_a_skewed_router():
    router = make_router()
    router.train()
    router.weight.data[:2] += 0.3  # experts 0 and 1 attract every token
    x = torch.randn(1024, router.weight.shape[1]) + 0.5
    history = []
    for _ in range(120):
        router(x)
        history.append(max_violation(router.update_bias(0.01)))
    # measured: 2.19 at the start; from step ~40 on, the sign rule's +-gamma oscillation
    # between 0.25 and 0.49
    assert history[0] > 2.0
    assert max(history[-20:]) < history[0] / 4, history[-20:]


def test_balance_loss_is_alpha_under_uniform_routing():
    E, K, T = 8, 2, 16
    # A circulant score matrix: token t prefers experts t and t+1 (mod E); every expert is
    # chosen equally often and the normalised affinities average to 1/E.
    row = torch.tensor([0.9, 0.8] + [0.1] * (E - 2))
    scores = torch.stack([row.roll(t % E) for t in range(T)])[None]
    assert sequence_balance_loss(scores, K, alpha=1e-4).item() == pytest.approx(1e-4)
    skewed = torch.stack([row for _ in range(T)])[None]  # everyone picks experts 0 and 1
    assert sequence_balance_loss(skewed, K, alpha=1e-4).item() > 2e-4


def test_balance_loss_gradient_flows_through_affinities_only():
    router = make_router()
    x = torch.randn(2 * 16, router.weight.shape[1])
    _, _, scores = router(x)
    loss = sequence_balance_loss(scores.view(2, 16, -1), 2, alpha=1.0)
    loss.backward()
    assert router.weight.grad.abs().sum() > 0


def test_max_violation():
    assert max_violation(torch.tensor([10, 10, 10, 10])) == 0
    assert max_violation(torch.tensor([25, 5, 5, 5])) == pytest.approx(1.5)


def test_the_batch_wise_loss_lets_each_sequence_lean_if_the_batch_is_even():
    E, K, T = 4, 1, 8
    lean = torch.full((2, T, E), 0.1)  # sequence 0 always picks expert 0, sequence 1 expert 1
    lean[0, :, 0], lean[1, :, 1] = 0.9, 0.9
    per_sequence = sequence_balance_loss(lean, K, alpha=1.0)
    per_batch = batch_balance_loss(lean, K, alpha=1.0)
    assert per_batch < per_sequence  # the batch is more even than each of its sequences
    assert batch_balance_loss(lean.view(-1, E), K, 1.0) == per_batch  # (N, E) as well
    one = lean[:1]
    assert torch.equal(batch_balance_loss(one, K, 1.0), sequence_balance_loss(one, K, 1.0))


def test_the_routing_bias_stays_fp32_when_the_model_is_cast():
    model = minids.MiniDeepSeek(tiny_config())
    for router in model.routers():
        router.bias.fill_(0.3)
    model.to(torch.bfloat16)
    router = model.routers()[0]
    assert router.bias.dtype == torch.float32 and router.weight.dtype == torch.bfloat16
    for _ in range(100):  # in bf16 each step of 0.001 near 0.3 would round away or double
        router.bias += 0.001
    assert router.bias[0].item() == pytest.approx(0.4, abs=1e-5)
    model.float()
    assert torch.equal(model.routers()[0].bias, router.bias)  # no round trip through bf16
