import sys

import pytest
import torch

import minids
from minids.generate import sample_next
from tests.conftest import tiny_model


def test_greedy_is_deterministic_and_keeps_the_prompt(tokens):
    model = tiny_model()
    a = minids.generate(model, tokens[:, :5], 12)
    b = minids.generate(model, tokens[:, :5], 12)
    assert torch.equal(a, b) and a.shape == (2, 17)
    assert torch.equal(a[:, :5], tokens[:, :5])


def test_greedy_picks_the_argmax_of_the_full_forward(tokens):
    model = tiny_model()
    out = minids.generate(model, tokens[:, :5], 8)
    for t in range(5, 13):
        assert torch.equal(out[:, t], model(out[:, :t]).logits[:, -1].argmax(-1))


def test_absorbed_and_naive_decoding_give_the_same_tokens(tokens):
    model = tiny_model(dtype=torch.float64)
    absorbed = minids.generate(model, tokens[:, :5], 20, absorb=True)
    naive = minids.generate(model, tokens[:, :5], 20, absorb=False)
    assert torch.equal(absorbed, naive)


def test_sampling_is_reproducible_with_a_generator(tokens):
    model = tiny_model()
    runs = [minids.generate(model, tokens[:, :5], 16, temperature=1.0,
                            generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*runs)
    greedy = minids.generate(model, tokens[:, :5], 16)
    assert not torch.equal(runs[0], greedy)


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.randn(64, 50)
    best = logits.argmax(-1)
    assert torch.equal(sample_next(logits, 1.0, top_k=1), best)
    assert torch.equal(sample_next(logits, 1.0, top_p=1e-6), best)


def test_top_k_and_top_p_keep_only_their_candidates():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    generator = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_k=2, generator=generator).tolist()) == {0, 1}
    # top_p = 0.7: 0.5 alone is short of it, 0.5 + 0.3 reaches it
    assert set(sample_next(logits, 1.0, top_p=0.7, generator=generator).tolist()) == {0, 1}


def test_generation_stops_at_eos(tokens):
    model = tiny_model()
    greedy = minids.generate(model, tokens[:1, :5], 12)
    eos = int(greedy[0, 8])  # the 4th new token
    stopped = minids.generate(model, tokens[:1, :5], 12, eos_token_id=eos)
    first = (greedy[0, 5:] == eos).nonzero()[0].item()
    assert torch.equal(stopped, greedy[:, : 5 + first + 1])


@pytest.mark.parametrize("kwargs,message", [
    (dict(max_new_tokens=60), "exceeds the context of 64"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(max_new_tokens=4, temperature=-1.0), "temperature"),
    (dict(max_new_tokens=4, temperature=1.0, top_k=0), "top_k"),
    (dict(max_new_tokens=4, temperature=1.0, top_p=1.5), "top_p"),
])
def test_bad_requests_raise_clear_errors(tokens, kwargs, message):
    with pytest.raises(ValueError, match=message):
        minids.generate(tiny_model(), tokens[:1, :5], **kwargs)


def test_prompt_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(batch, T\)"):
        minids.generate(tiny_model(), torch.tensor([1, 2, 3]), 4)


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_a_bad_temperature_is_refused_and_the_models_mode_is_kept(temperature):
    model = tiny_model().train()
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        minids.generate(model, torch.tensor([[1, 2, 3]]), 4, temperature=temperature)
    assert model.training


def test_generate_restores_the_mode_even_when_decoding_fails(monkeypatch):
    model = tiny_model().train()

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(sys.modules["minids.generate"], "sample_next", broken)
    with pytest.raises(RuntimeError):
        minids.generate(model, torch.tensor([[1, 2, 3]]), 4)
    assert model.training
