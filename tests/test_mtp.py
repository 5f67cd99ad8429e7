import copy

import pytest
import torch

import minids
from minids import MiniDeepSeek
from tests.conftest import replace, tiny_model


def test_mtp_shares_the_very_embedding_and_head_parameters():
    model = tiny_model(num_mtp_layers=2)
    for module in model.mtp:
        assert module.embed.weight is model.embed.weight
        assert module.head.weight is model.head.weight
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("mtp.") and (".embed." in n or ".head." in n) for n in names)


def mtp_logits(model, tokens):
    """Depth-1 MTP logits at every position i < T - 1 (predicting t_{i+2})."""
    T = tokens.shape[1]
    hidden = model(tokens).hidden
    cos, sin = model.rope_cos[: T - 1], model.rope_sin[: T - 1]
    return model.mtp[0](hidden[:, :-1], tokens[:, 1:], cos, sin)[1]


def test_depth_one_sees_only_tokens_up_to_i_plus_one(tokens):
    model = tiny_model()
    i = 9
    base = mtp_logits(model, tokens)
    later = tokens.clone()
    later[:, i + 2 :] = (later[:, i + 2 :] + 1) % 128  # t_{i+2} onwards changed
    torch.testing.assert_close(mtp_logits(model, later)[:, : i + 1], base[:, : i + 1])
    nearer = tokens.clone()
    nearer[:, i + 1] = (nearer[:, i + 1] + 1) % 128  # t_{i+1} is seen by position i
    assert not torch.allclose(mtp_logits(model, nearer)[:, i], base[:, i])


def test_removing_mtp_leaves_main_logits_unchanged(tokens):
    with_mtp = tiny_model(num_mtp_layers=1)
    without = MiniDeepSeek(replace(with_mtp.config, num_mtp_layers=0)).eval()
    state = {k: v for k, v in with_mtp.state_dict().items() if not k.startswith("mtp.")}
    without.load_state_dict(state)
    assert torch.equal(without(tokens).logits, with_mtp(tokens).logits)
    a, b = with_mtp(tokens[:, :-1], tokens[:, 1:]), without(tokens[:, :-1], tokens[:, 1:])
    assert torch.equal(a.main_loss, b.main_loss)
    assert a.mtp_loss > 0 and b.mtp_loss == 0


def test_mtp_loss_is_lambda_over_depth_times_sum(tokens):
    model = tiny_model(num_mtp_layers=2, mtp_loss_weight=0.3)
    out = model(tokens[:, :-1], tokens[:, 1:])
    T = tokens.shape[1] - 1
    ids, targets = tokens[:, :-1], tokens[:, 1:]
    h, losses = out.hidden, []
    for k, module in enumerate(model.mtp, start=1):
        h, logits, _ = module(h[:, :-1], ids[:, k:], model.rope_cos[: T - k], model.rope_sin[: T - k])
        losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets[:, k:].flatten()))
    torch.testing.assert_close(out.mtp_loss, 0.3 / 2 * (losses[0] + losses[1]))
    torch.testing.assert_close(out.loss, out.main_loss + out.mtp_loss + out.balance_loss)


def test_speculative_equals_greedy_when_drafts_are_rejected(tokens):
    model = tiny_model(dtype=torch.float64)
    plain = minids.generate(model, tokens[:1, :6], 30)
    result = minids.speculative_generate(model, tokens[:1, :6], 30)
    assert torch.equal(result.tokens, plain)
    assert result.drafted > 0


def test_speculative_equals_greedy_and_saves_passes_when_drafts_are_good(trained_tiny):
    model = copy.deepcopy(trained_tiny[0]).double()
    prompts = [[5, 8, 11], [100, 101, 102], [7, 10, 13, 16]]
    total_drafted = total_accepted = 0
    for prompt in prompts:
        ids = torch.tensor([prompt])
        plain = minids.generate(model, ids, 24)
        result = minids.speculative_generate(model, ids, 24)
        assert torch.equal(result.tokens, plain), prompt
        assert result.main_passes < 24
        total_drafted += result.drafted
        total_accepted += result.accepted
    assert total_accepted / total_drafted > 0.8


def joint_of_two_tokens(model, prompt, top_k):
    """The exact distribution (vocab, vocab) of the first two sampled tokens at
    temperature 1 and top_k: p(t1) p(t2 | t1)."""
    from minids.generate import sampling_probs

    first = sampling_probs(model(prompt).logits[:, -1], 1.0, top_k)[0]  # (V,)
    rows = torch.cat([prompt.expand(len(first), -1), torch.arange(len(first))[:, None]], 1)
    second = sampling_probs(model(rows).logits[:, -1], 1.0, top_k)  # (V, V): row t1
    return first[:, None] * second


def total_variation(pairs, exact):
    counts = torch.zeros_like(exact)
    for t1, t2 in pairs:
        counts[t1, t2] += 1
    return 0.5 * (counts / len(pairs) - exact).abs().sum().item()


@pytest.mark.parametrize("drafts", ["untrained", "trained"])
def test_sampled_speculative_decoding_draws_from_the_main_models_distribution(
        drafts, tokens, trained_tiny):
    if drafts == "untrained":  # the MTP module's drafts are mostly rejected
        model, prompt = tiny_model(seed=3), tokens[:1, :5]
        with torch.no_grad():
            model.head.weight.mul_(10)  # peaked distributions: the test can tell them apart
    else:  # counting sequences: the MTP module's drafts are mostly kept
        model, prompt = trained_tiny[0], torch.tensor([[5, 8, 11]])
    top_k, n = 6, 2000
    with torch.no_grad():
        exact = joint_of_two_tokens(model, prompt, top_k)
    generator = torch.Generator().manual_seed(0)
    runs = [minids.speculative_generate(model, prompt, 2, temperature=1.0, top_k=top_k,
                                        generator=generator) for _ in range(n)]
    speculative = [run.tokens[0, -2:].tolist() for run in runs]
    plain = minids.generate(model, prompt.expand(n, -1), 2, temperature=1.0, top_k=top_k,
                            generator=generator)[:, -2:].tolist()
    kept = sum(run.accepted for run in runs) / n
    # measured (untrained drafts): 0.058 for plain sampling, 0.044 for speculative, 0.97
    # when every draft is kept (the rule broken); 3 % of drafts kept
    assert total_variation(speculative, exact) < 1.5 * max(total_variation(plain, exact), 0.04)
    assert kept < 0.2 if drafts == "untrained" else kept > 0.5


def test_sampling_settings_are_checked_before_speculative_decoding(tokens):
    model = tiny_model()
    with pytest.raises(ValueError, match="temperature"):
        minids.speculative_generate(model, tokens[:1, :5], 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        minids.speculative_generate(model, tokens[:1, :5], 3, temperature=1.0, top_p=2.0)
