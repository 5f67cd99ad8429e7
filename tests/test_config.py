import json

import pytest

from minids import ModelConfig
from minids.config import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_round_trip_through_json(name):
    config = ModelConfig.preset(name)
    assert ModelConfig.from_dict(json.loads(config.to_json())) == config


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*book"):
        ModelConfig.preset("huge")


BAD_FIELDS = [
    ("vocab_size", 0), ("hidden_size", -8), ("intermediate_size", 0),
    ("num_hidden_layers", 0), ("num_attention_heads", 0), ("hidden_size", 32.0),
    ("kv_lora_rank", 0), ("qk_nope_head_dim", 0), ("v_head_dim", 0),
    ("moe_intermediate_size", 0), ("max_position_embeddings", 0),
    ("q_lora_rank", 0), ("qk_rope_head_dim", 5), ("qk_rope_head_dim", 0),
    ("n_routed_experts", -1), ("n_shared_experts", -1), ("num_mtp_layers", -1),
    ("first_k_dense_replace", 9), ("rope_theta", 0.0), ("rms_norm_eps", 0.0),
    ("initializer_range", -0.1), ("routed_scaling_factor", 0.0),
    ("mtp_loss_weight", -0.1), ("bias_update_speed", float("nan")),
    ("balance_loss_alpha", -1e-4), ("norm_topk_prob", 1),
    ("n_group", 3), ("n_group", 8), ("n_group", 0), ("topk_group", 5), ("topk_group", 0),
    ("num_experts_per_tok", 0), ("num_experts_per_tok", 9),
]


@pytest.mark.parametrize("field,value", BAD_FIELDS)
def test_bad_field_raises_value_error_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig.preset("tiny", **{field: value})


def test_top_k_must_fit_in_the_kept_groups():
    # 8 experts in 4 groups of 2; keeping 1 group leaves 2 experts for a top-3.
    with pytest.raises(ValueError, match="num_experts_per_tok.*topk_group"):
        ModelConfig.preset("tiny", topk_group=1, num_experts_per_tok=3)


YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
BAD_ROPE_SCALING = [
    ({**YARN, "type": "dynamic"}, "type"),
    ({**YARN, "factor": 0.5}, "factor"),
    ({**YARN, "original_max_position_embeddings": 0}, "original_max_position_embeddings"),
    ({**YARN, "beta_fast": 1.0, "beta_slow": 32.0}, "beta_fast"),
    ({**YARN, "mscale": 0.7}, "unknown key"),
    ("yarn", "None or a dict"),
]


@pytest.mark.parametrize("scaling,message", BAD_ROPE_SCALING)
def test_bad_rope_scaling_raises_value_error(scaling, message):
    with pytest.raises(ValueError, match=f"rope_scaling.*{message}|{message}.*rope_scaling"):
        ModelConfig.preset("tiny", rope_scaling=scaling)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown field.*n_experts"):
        ModelConfig.from_dict({"n_experts": 4})


def test_a_dense_model_ignores_routing_fields():
    config = ModelConfig.preset("tiny", n_routed_experts=0, n_group=3)
    assert not any(config.is_moe_layer(i) for i in range(config.num_hidden_layers))
