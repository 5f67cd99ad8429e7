import pytest
import torch

from tests.conftest import tiny_model


@pytest.mark.parametrize("q_lora_rank", [16, None])
def test_absorbed_equals_naive_in_prefill(tokens, q_lora_rank):
    model = tiny_model(dtype=torch.float64, q_lora_rank=q_lora_rank)
    x = model.embed(tokens)
    T = tokens.shape[1]
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    attn = model.layers[0].attn
    naive = attn(x, cos, sin, absorb=False)
    absorbed = attn(x, cos, sin, absorb=True)
    torch.testing.assert_close(absorbed, naive, rtol=0, atol=1e-10)


def test_absorbed_equals_naive_in_cached_decode(tokens):
    model = tiny_model(dtype=torch.float64)
    prompt, rest = tokens[:, :16], tokens[:, 16:]
    logits = {}
    for absorb in (False, True):
        cache = model.new_cache(2)
        model(prompt, cache=cache, absorb=False)
        logits[absorb] = torch.cat(
            [model(rest[:, i : i + 1], cache=cache, absorb=absorb).logits for i in range(8)], 1)
    torch.testing.assert_close(logits[True], logits[False], rtol=0, atol=1e-10)


@pytest.mark.parametrize("absorb", [False, True])
def test_incremental_decode_equals_full_forward(tokens, absorb):
    model = tiny_model(dtype=torch.float64)
    full = model(tokens).logits
    cache = model.new_cache(2)
    # prefill 10 tokens, then 3 at once (a verify step), then one at a time
    pieces = [tokens[:, :10], tokens[:, 10:13]] + [tokens[:, i : i + 1] for i in range(13, 24)]
    stepwise = torch.cat([model(p, cache=cache, absorb=absorb).logits for p in pieces], dim=1)
    torch.testing.assert_close(stepwise, full, rtol=0, atol=1e-10)


def test_cache_holds_only_the_latent_and_one_rope_key(tokens):
    model = tiny_model()
    c = model.config
    cache = model.new_cache(2, 24)
    model(tokens, cache=cache)
    latent_cache, rope_cache = cache.layers[0].tensors
    assert latent_cache.shape == (2, 24, c.kv_lora_rank)
    assert rope_cache.shape == (2, 24, c.qk_rope_head_dim)
    assert cache.nbytes_per_token() == c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * 4
    # the cached latent is the normalised one: its RMS (before the norm weight) is 1
    attn = model.layers[0].attn
    latent = attn.wkv_a(model.layers[0].attn_norm(model.embed(tokens)))[..., : c.kv_lora_rank]
    torch.testing.assert_close(latent_cache, attn.kv_norm(latent))


def test_rope_key_is_identical_across_heads(tokens, monkeypatch):
    model = tiny_model()
    attn, c = model.layers[0].attn, model.config
    keys, original = {}, torch.nn.functional.scaled_dot_product_attention

    def capture(q, k, v, **kwargs):
        keys["k"] = k
        return original(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", capture)
    attn(model.embed(tokens), model.rope_cos[:24], model.rope_sin[:24])
    k_rope = keys["k"][..., c.qk_nope_head_dim :]  # (B, H, T, rope)
    assert torch.equal(k_rope, k_rope[:, :1].expand_as(k_rope))
    assert not torch.equal(keys["k"][:, 0, :, : c.qk_nope_head_dim], keys["k"][:, 1, :, : c.qk_nope_head_dim])


def test_cache_overflow_and_context_overflow_raise(tokens):
    model = tiny_model()
    with pytest.raises(ValueError, match="cache holds 8 tokens"):
        model(tokens, cache=model.new_cache(2, 8))
    too_long = torch.zeros(1, model.config.max_position_embeddings + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="exceed the context of 64"):
        model(too_long)
