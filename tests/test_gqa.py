import math

import pytest
import torch

import minids
from minids import ModelConfig
from minids.rope import apply_rope
from tests.conftest import tiny_model, train_briefly


def gqa_model(kv_heads=None, dtype=torch.float64, **overrides):
    return tiny_model(dtype=dtype, attention="gqa", num_key_value_heads=kv_heads, **overrides)


def reference_mha(attn, x, cos, sin):
    """Textbook causal multi-head attention, one head at a time."""
    B, T, _ = x.shape
    H, d = attn.n_heads, attn.head_dim
    q = apply_rope(attn.wq(x).view(B, T, H, d), cos[:, None], sin[:, None])
    k = apply_rope(attn.wk(x).view(B, T, H, d), cos[:, None], sin[:, None])
    v = attn.wv(x).view(B, T, H, d)
    heads = []
    for h in range(H):
        scores = q[:, :, h] @ k[:, :, h].transpose(1, 2) / math.sqrt(d)  # (B, T, T)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        heads.append(scores.softmax(-1) @ v[:, :, h])
    return attn.wo(torch.cat(heads, dim=-1))


def test_mha_equals_textbook_attention(tokens):
    model = gqa_model()
    attn = model.layers[0].attn
    x = model.embed(tokens)
    cos, sin = model.rope_cos[:24], model.rope_sin[:24]
    torch.testing.assert_close(attn(x, cos, sin), reference_mha(attn, x, cos, sin), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kv_heads", [None, 1])
def test_cached_decode_equals_full_forward(tokens, kv_heads):
    model = gqa_model(kv_heads)
    full = model(tokens).logits
    cache = model.new_cache(2)
    pieces = [tokens[:, :10], tokens[:, 10:13]] + [tokens[:, i : i + 1] for i in range(13, 24)]
    stepwise = torch.cat([model(p, cache=cache).logits for p in pieces], dim=1)
    torch.testing.assert_close(stepwise, full, rtol=0, atol=1e-10)


def test_cache_sizes_of_mha_mqa_and_mla():
    mha, mqa, mla = gqa_model(dtype=torch.float32), gqa_model(1, torch.float32), tiny_model()
    c = mla.config  # hidden 32, 2 heads of 16, 3 layers
    assert mha.new_cache(1, 8).nbytes_per_token() == 3 * 2 * 2 * 16 * 4
    assert mqa.new_cache(1, 8).nbytes_per_token() == 3 * 2 * 1 * 16 * 4
    assert mla.new_cache(1, 8).nbytes_per_token() == 3 * (c.kv_lora_rank + c.qk_rope_head_dim) * 4


def test_dense_mha_baseline_trains():
    minids.seed(0)
    model = gqa_model(dtype=torch.float32, n_routed_experts=0, num_mtp_layers=0)
    losses = train_briefly(model, steps=60)
    # measured: 4.85 at the first step, 0.50 averaged over the last 5 of 60
    assert losses[0] > 4.0 and sum(losses[-5:]) / 5 < 1.0, (losses[0], losses[-5:])


@pytest.mark.parametrize("overrides,field", [
    (dict(attention="linear"), "attention"),
    (dict(attention="gqa", num_key_value_heads=3), "num_key_value_heads"),
    (dict(attention="gqa", num_key_value_heads=0), "num_key_value_heads"),
    (dict(attention="gqa", hidden_size=33), "hidden_size"),
])
def test_bad_attention_fields_raise(overrides, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig.preset("tiny", **overrides)


def test_to_hf_refuses_gqa():
    from minids.hf import to_hf

    with pytest.raises(ValueError, match="attention='gqa'"):
        to_hf(gqa_model(dtype=torch.float32))
