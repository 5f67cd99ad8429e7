import math

import pytest
import torch

from minids.rope import (apply_rope, linear_inv_freq, ntk_inv_freq, rope_cos_sin,
                         rope_inv_freq, yarn_correction_range, yarn_inv_freq, yarn_mscale)
from tests.conftest import tiny_config


def test_yarn_correction_range_at_v3_values():
    assert yarn_correction_range(64, 10000.0, 4096, 32.0, 1.0) == (10, 23)


def test_yarn_inv_freq_equals_transformers():
    from transformers import DeepseekV3Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = DeepseekV3Config(
        qk_rope_head_dim=64, max_position_embeddings=4096 * 40,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                         "original_max_position_embeddings": 4096, "beta_fast": 32.0,
                         "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
    )
    theirs, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config)
    ours = yarn_inv_freq(64, 10000.0, 40.0, 4096)
    torch.testing.assert_close(ours, theirs)  # same formula; fp32 rounding order differs
    assert attention_factor == 1.0  # cos/sin unscaled: the temperature lives in the softmax


def test_yarn_with_factor_one_is_plain_rope():
    torch.testing.assert_close(yarn_inv_freq(64, 10000.0, 1.0, 4096), rope_inv_freq(64, 10000.0))


def test_yarn_keeps_high_and_interpolates_low_frequencies():
    plain, yarn = rope_inv_freq(64, 1e4), yarn_inv_freq(64, 1e4, 40.0, 4096)
    torch.testing.assert_close(yarn[:10], plain[:10])  # below low: unchanged
    torch.testing.assert_close(yarn[23:], plain[23:] / 40)  # above high: divided by s


def test_softmax_scale_with_and_without_yarn():
    v3 = dict(qk_nope_head_dim=128, qk_rope_head_dim=64)
    plain = tiny_config(**v3)
    yarn = tiny_config(**v3, rope_scaling={"type": "yarn", "factor": 40.0,
                                           "original_max_position_embeddings": 4096})
    assert plain.softmax_scale == 192**-0.5
    assert yarn.softmax_scale == pytest.approx(192**-0.5 * (0.1 * math.log(40) + 1) ** 2)
    assert yarn.softmax_scale == pytest.approx(0.135234, abs=1e-6)
    assert yarn_mscale(40.0) == pytest.approx(1.36889, abs=1e-5)


def rotate_half_rope(x, cos, sin):
    """The rotate-half layout: pairs are (x_i, x_{i+dim/2}) instead of (x_2i, x_2i+1)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * torch.cat([cos, cos], -1) + rotated * torch.cat([sin, sin], -1)


def test_interleaved_and_rotate_half_give_equal_scores():
    torch.manual_seed(0)
    T, dim = 12, 16
    cos, sin = rope_cos_sin(T, rope_inv_freq(dim, 10000.0))
    q, k = torch.randn(T, dim), torch.randn(T, dim)
    interleaved = apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).T
    permute = torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])  # evens, odds
    half = rotate_half_rope(q[:, permute], cos, sin) @ rotate_half_rope(k[:, permute], cos, sin).T
    torch.testing.assert_close(interleaved, half, rtol=1e-5, atol=1e-5)
    # and RoPE makes scores depend on relative position only
    shifted = apply_rope(q[:1], cos[3:4], sin[3:4]) @ apply_rope(k[:1], cos[5:6], sin[5:6]).T
    base = apply_rope(q[:1], cos[0:1], sin[0:1]) @ apply_rope(k[:1], cos[2:3], sin[2:3]).T
    torch.testing.assert_close(shifted, base, rtol=1e-5, atol=1e-5)


def test_position_interpolation_divides_every_frequency_by_the_factor():
    torch.testing.assert_close(linear_inv_freq(64, 1e4, 4.0), rope_inv_freq(64, 1e4) / 4)


def test_ntk_keeps_the_highest_frequency_and_divides_the_lowest_by_the_factor():
    plain, ntk = rope_inv_freq(64, 1e4), ntk_inv_freq(64, 1e4, 4.0)
    assert ntk[0] == plain[0] == 1.0
    torch.testing.assert_close(ntk[-1], plain[-1] / 4)
    assert ((plain / ntk)[1:].diff() > 0).all()  # the stretch grows toward low frequencies


def test_only_yarn_changes_the_softmax_temperature():
    from minids.config import ModelConfig

    scales = {kind: ModelConfig.preset("tiny", rope_scaling={
        "type": kind, "factor": 4.0, "original_max_position_embeddings": 16}).softmax_scale
        for kind in ("yarn", "linear", "ntk")}
    plain = ModelConfig.preset("tiny").softmax_scale
    assert scales["linear"] == scales["ntk"] == plain < scales["yarn"]
    assert scales["yarn"] == pytest.approx(plain * yarn_mscale(4.0) ** 2)
