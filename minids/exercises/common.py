"""What the chapters' exercise checkers share: seeded cases and small builders."""

import functools
import json
from contextlib import contextmanager

import torch

from minids.config import ModelConfig
from minids.model import MiniDeepSeek
from minids.moe import Router

# DeepSeek-V3 itself (671B parameters) in ModelConfig's terms: the cache-size exercise
# checks a formula at full scale; the model is built on the meta device, without memory.
DEEPSEEK_V3 = dict(
    vocab_size=129280, hidden_size=7168, intermediate_size=18432, num_hidden_layers=61,
    num_attention_heads=128, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
    qk_rope_head_dim=64, v_head_dim=128, moe_intermediate_size=2048, n_routed_experts=256,
    n_shared_experts=1, num_experts_per_tok=8, n_group=8, topk_group=4,
    first_k_dense_replace=3, max_position_embeddings=4096,
)


@contextmanager
def seeded(seed: int):
    """Run a block with the global RNG seeded, and restore the RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale




def router_for(n_experts, n_group, topk_group, top_k, bias):
    """A Router of n_experts with the given groups, top-k and selection bias."""
    config = ModelConfig.preset("tiny", n_routed_experts=n_experts, n_group=n_group,
                                topk_group=topk_group, num_experts_per_tok=top_k)
    router = Router(config)
    router.bias.copy_(bias)
    return router


@functools.cache
def meta_model(config_json: str) -> MiniDeepSeek:
    """The model's shapes without its memory, even at 671B parameters (built in ~1 s)."""
    with torch.device("meta"):
        return MiniDeepSeek(ModelConfig.from_dict(json.loads(config_json)))
