"""Decode costs: the counted formulas equal what torch's FLOP counter sees when MLA
attends over a longer cache, and the cache sizes are what the caches hold."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from minids.config import ModelConfig
from minids.inference import (CACHE_LAYOUTS, arithmetic_intensity,
                              attention_flops_per_cached_token, cache_elements_per_token,
                              matmul_intensity)
from minids.mla import MLA
from tests.conftest import tiny_config


def explicit_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """SDPA as two matmuls (torch's FLOP counter does not see the CPU's fused kernel);
    enough for one query token, which needs no mask."""
    assert attn_mask is None and not is_causal
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v


def counted(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def per_cached_token(config, attend_with) -> float:
    """FLOPs of one new token attending over 40 more cached tokens, divided by 40."""
    torch.manual_seed(0)
    flops = []
    for S in (24, 64):
        flops.append(counted(attend_with, S))
    return (flops[1] - flops[0]) / 40


@pytest.mark.parametrize("layout", ["reexpand", "absorbed"])
def test_the_latent_layouts_cost_what_the_formula_says(layout, monkeypatch):
    monkeypatch.setattr(F, "scaled_dot_product_attention", explicit_attention)
    config = tiny_config()
    mla = MLA(config)
    H = config.num_attention_heads

    def attend(S):
        q_nope = torch.randn(1, 1, H, config.qk_nope_head_dim)
        q_rope = torch.randn(1, 1, H, config.qk_rope_head_dim)
        latent, k_rope = torch.randn(1, S, config.kv_lora_rank), torch.randn(1, S, config.qk_rope_head_dim)
        way = mla.attend_naive if layout == "reexpand" else mla.attend_absorbed
        return way(q_nope, q_rope, latent, k_rope)

    # minids' naive path pads v to the key width for SDPA: p * v then costs 2 H qk
    padding = 2 * H * (config.qk_head_dim - config.v_head_dim) if layout == "reexpand" else 0
    assert per_cached_token(config, attend) == (
        attention_flops_per_cached_token(config, layout) + padding)


def test_the_expanded_layout_costs_scores_and_sum_only():
    config = tiny_config(v_head_dim=tiny_config().qk_head_dim)  # SDPA: one head size
    H, d = config.num_attention_heads, config.qk_head_dim

    def attend(S):
        q, k, v = torch.randn(1, H, 1, d), torch.randn(1, H, S, d), torch.randn(1, H, S, d)
        return explicit_attention(q, k, v)

    assert per_cached_token(config, attend) == attention_flops_per_cached_token(config, "expanded")


def test_the_latent_cache_holds_c_plus_rope_and_v3_saves_a_factor_of_71():
    config = tiny_config()
    cache = MLA(config)
    assert sum(s[0] for s in cache.cache_shapes()) == cache_elements_per_token(config, "absorbed")
    v3 = ModelConfig(vocab_size=129280, hidden_size=7168, num_attention_heads=128,
                     q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
                     qk_rope_head_dim=64, v_head_dim=128, n_routed_experts=256,
                     num_experts_per_tok=8, n_group=8, topk_group=4,
                     moe_intermediate_size=2048, intermediate_size=18432,
                     num_hidden_layers=61, first_k_dense_replace=3)
    expanded, latent = (cache_elements_per_token(v3, way) for way in ("expanded", "absorbed"))
    assert (expanded, latent) == (40960, 576) and round(expanded / latent) == 71
    assert attention_flops_per_cached_token(v3, "absorbed") == 278528


def test_intensity_grows_with_the_rows_of_a_matmul_and_bad_input_is_refused():
    assert matmul_intensity(1, 4096, 4096) < 1.01  # a decoding step: about 1 FLOP a byte
    assert matmul_intensity(4096, 4096, 4096) == pytest.approx(4096 / 3)
    with pytest.raises(ValueError, match="bytes_moved"):
        arithmetic_intensity(1.0, 0)
    with pytest.raises(ValueError, match="layout"):
        cache_elements_per_token(tiny_config(), "paged")
    assert set(CACHE_LAYOUTS) == {"expanded", "reexpand", "absorbed"}
