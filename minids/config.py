"""The model configuration: one dataclass, validated when it is made.

Field names follow `transformers`' `DeepseekV3Config` wherever it has one, so a config
reads the same here, in the DeepSeek-V3 release and in the reference implementation.
The few fields of our own (MTP loss weight, bias update speed, balance loss weight) are
marked below.
"""

import dataclasses
import json
import math
from dataclasses import dataclass

from minids.rope import yarn_mscale

ROPE_SCALING_TYPES = ("yarn", "linear", "ntk")  # YaRN, position interpolation, NTK-aware
ROPE_SCALING_KEYS = ("type", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow")


@dataclass
class ModelConfig:
    # Sizes of the transformer.
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768  # SwiGLU width of the dense layers
    num_hidden_layers: int = 4
    num_attention_heads: int = 4

    # Attention: "mla" (Multi-head Latent Attention, REFERENCE §1) or "gqa" (grouped-query
    # attention with num_key_value_heads heads for keys and values, None = one per query
    # head, i.e. MHA; head_dim = hidden_size / num_attention_heads): the baselines.
    attention: str = "mla"
    num_key_value_heads: int | None = None
    q_lora_rank: int | None = 128  # None: a plain query projection, no compression
    kv_lora_rank: int = 64
    qk_nope_head_dim: int = 32
    qk_rope_head_dim: int = 16
    v_head_dim: int = 32

    # DeepSeekMoE (REFERENCE §2). n_routed_experts = 0 makes every layer dense.
    moe_intermediate_size: int = 128  # SwiGLU width of one expert
    n_routed_experts: int = 16
    n_shared_experts: int = 1
    num_experts_per_tok: int = 4
    n_group: int = 4
    topk_group: int = 2
    routed_scaling_factor: float = 2.5
    norm_topk_prob: bool = True
    first_k_dense_replace: int = 1

    # Positions. rope_scaling is None (plain RoPE) or DeepSeek's YaRN dict, e.g.
    # {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}; "linear"
    # (position interpolation) and "ntk" (NTK-aware) take the same keys, for comparison.
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    max_position_embeddings: int = 512

    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.006  # std of the normal init (V3: 0.006)

    # Multi-Token Prediction (REFERENCE §4). num_mtp_layers is D.
    num_mtp_layers: int = 1
    mtp_loss_weight: float = 0.3  # ours: lambda

    # Balancing (REFERENCE §3).
    bias_update_speed: float = 0.001  # ours: gamma of the sign rule
    balance_loss_alpha: float = 1e-4  # ours: alpha of the sequence-wise loss

    def __post_init__(self):
        if isinstance(self.rope_scaling, dict):
            self.rope_scaling = dict(self.rope_scaling)
        for problem in _problems(self):
            raise ValueError(f"ModelConfig: {problem}")

    # Derived sizes.
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def n_kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_dim(self) -> int:
        """The width of a grouped-query attention head (MLA's heads have their own fields)."""
        return self.hidden_size // self.num_attention_heads

    @property
    def rope_dim(self) -> int:
        """How many channels of a key RoPE turns: MLA's rope key, or a whole GQA head."""
        return self.qk_rope_head_dim if self.attention == "mla" else self.head_dim

    @property
    def yarn_factor(self) -> float:
        """YaRN's factor (1 without YaRN): the one scaling that changes the softmax too."""
        scaling = self.rope_scaling
        return float(scaling["factor"]) if scaling and scaling["type"] == "yarn" else 1.0

    @property
    def softmax_scale(self) -> float:
        """tau = (key width)^-1/2, times mscale^2 when YaRN extends the context."""
        width = self.qk_head_dim if self.attention == "mla" else self.head_dim
        return width**-0.5 * yarn_mscale(self.yarn_factor) ** 2

    def is_moe_layer(self, layer_id: int) -> bool:
        return self.n_routed_experts > 0 and layer_id >= self.first_k_dense_replace

    # Presets and serialisation.
    @classmethod
    def preset(cls, name: str, **overrides) -> "ModelConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {unknown}")
        return cls(**values)


PRESETS = {
    # Unit tests: a forward pass in milliseconds, yet every feature switched on.
    "tiny": dict(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=2, q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8,
        qk_rope_head_dim=4, v_head_dim=8, moe_intermediate_size=16, n_routed_experts=8,
        n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
        first_k_dense_replace=1, max_position_embeddings=64, initializer_range=0.02,
    ),
    # The chapters: a few million parameters that train on 2 CPU cores in minutes.
    "book": dict(
        vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
        num_attention_heads=4, q_lora_rank=128, kv_lora_rank=64, qk_nope_head_dim=32,
        qk_rope_head_dim=16, v_head_dim=32, moe_intermediate_size=96, n_routed_experts=16,
        n_shared_experts=1, num_experts_per_tok=4, n_group=4, topk_group=2,
        first_k_dense_replace=1, max_position_embeddings=512, initializer_range=0.02,
        bias_update_speed=0.01,  # V3's 0.001 is for ~1e5 steps; the book trains for hundreds
    ),
    # A GPU (Colab) run: the same shape, about 10x the compute.
    "small": dict(
        vocab_size=4096, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
        num_attention_heads=8, q_lora_rank=256, kv_lora_rank=128, qk_nope_head_dim=48,
        qk_rope_head_dim=16, v_head_dim=48, moe_intermediate_size=192, n_routed_experts=32,
        n_shared_experts=1, num_experts_per_tok=6, n_group=4, topk_group=2,
        first_k_dense_replace=1, max_position_embeddings=1024, initializer_range=0.02,
    ),
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problems(c: ModelConfig):
    """Yield one sentence per impossible value, each naming the field and the value."""
    positive_ints = (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
        "v_head_dim", "moe_intermediate_size", "max_position_embeddings",
    )
    for name in positive_ints:
        value = getattr(c, name)
        if not _is_int(value) or value <= 0:
            yield f"{name} must be a positive int, got {value!r}"
    for name in ("n_routed_experts", "n_shared_experts", "num_mtp_layers", "first_k_dense_replace"):
        value = getattr(c, name)
        if not _is_int(value) or value < 0:
            yield f"{name} must be an int >= 0, got {value!r}"
    for name in ("rope_theta", "rms_norm_eps", "initializer_range", "routed_scaling_factor"):
        value = getattr(c, name)
        if not _is_number(value) or value <= 0:
            yield f"{name} must be a positive number, got {value!r}"
    for name in ("mtp_loss_weight", "bias_update_speed", "balance_loss_alpha"):
        value = getattr(c, name)
        if not _is_number(value) or value < 0:
            yield f"{name} must be a number >= 0, got {value!r}"
    if c.q_lora_rank is not None and (not _is_int(c.q_lora_rank) or c.q_lora_rank <= 0):
        yield f"q_lora_rank must be None or a positive int, got {c.q_lora_rank!r}"
    if not isinstance(c.norm_topk_prob, bool):
        yield f"norm_topk_prob must be a bool, got {c.norm_topk_prob!r}"
    if _is_int(c.qk_rope_head_dim) and c.qk_rope_head_dim % 2:
        yield f"qk_rope_head_dim must be even (RoPE rotates pairs), got {c.qk_rope_head_dim}"
    if _is_int(c.first_k_dense_replace) and _is_int(c.num_hidden_layers):
        if c.first_k_dense_replace > c.num_hidden_layers:
            yield (f"first_k_dense_replace must be <= num_hidden_layers "
                   f"({c.num_hidden_layers}), got {c.first_k_dense_replace}")
    yield from _attention_problems(c)
    yield from _routing_problems(c)
    yield from _rope_scaling_problems(c.rope_scaling)


def _attention_problems(c: ModelConfig):
    if c.attention not in ("mla", "gqa"):
        yield f"attention must be 'mla' or 'gqa', got {c.attention!r}"
        return
    kv_heads = c.num_key_value_heads
    if kv_heads is not None and (not _is_int(kv_heads) or kv_heads <= 0):
        yield f"num_key_value_heads must be None or a positive int, got {kv_heads!r}"
        return
    if c.attention != "gqa" or not (_is_int(c.hidden_size) and _is_int(c.num_attention_heads)):
        return
    if c.num_attention_heads > 0 and c.num_attention_heads % c.n_kv_heads:
        yield (f"num_key_value_heads ({c.n_kv_heads}) must divide num_attention_heads "
               f"({c.num_attention_heads})")
    if c.num_attention_heads > 0 and (c.hidden_size % c.num_attention_heads or c.head_dim % 2):
        yield (f"hidden_size ({c.hidden_size}) must split into num_attention_heads "
               f"({c.num_attention_heads}) heads of even width for gqa")


def _routing_problems(c: ModelConfig):
    experts, k = c.n_routed_experts, c.num_experts_per_tok
    if not _is_int(experts) or experts <= 0:
        return  # reported above, or a dense model whose routing fields are unused
    if not _is_int(c.n_group) or c.n_group <= 0:
        yield f"n_group must be a positive int, got {c.n_group!r}"
        return
    if experts % c.n_group:
        yield f"n_group must divide n_routed_experts ({experts}), got {c.n_group}"
        return
    per_group = experts // c.n_group
    if per_group < 2:
        yield (f"n_group must leave >= 2 experts per group (a group scores its top 2), "
               f"got {c.n_group} groups of {per_group}")
    if not _is_int(c.topk_group) or not 1 <= c.topk_group <= c.n_group:
        yield f"topk_group must be in [1, n_group={c.n_group}], got {c.topk_group!r}"
        return
    if not _is_int(k) or not 1 <= k <= experts:
        yield f"num_experts_per_tok must be in [1, n_routed_experts={experts}], got {k!r}"
    elif k > c.topk_group * per_group:
        yield (f"num_experts_per_tok ({k}) must fit in the experts of topk_group="
               f"{c.topk_group} groups ({c.topk_group * per_group})")


def _rope_scaling_problems(scaling):
    if scaling is None:
        return
    if not isinstance(scaling, dict):
        yield f"rope_scaling must be None or a dict, got {scaling!r}"
        return
    unknown = sorted(set(scaling) - set(ROPE_SCALING_KEYS))
    if unknown:
        yield f"rope_scaling has unknown key(s) {unknown}; known: {list(ROPE_SCALING_KEYS)}"
    if scaling.get("type") not in ROPE_SCALING_TYPES:
        yield f"rope_scaling type must be one of {ROPE_SCALING_TYPES}, got {scaling.get('type')!r}"
    factor = scaling.get("factor")
    if not _is_number(factor) or factor < 1:
        yield f"rope_scaling factor must be a number >= 1, got {factor!r}"
    original = scaling.get("original_max_position_embeddings")
    if not _is_int(original) or original <= 0:
        yield f"rope_scaling original_max_position_embeddings must be a positive int, got {original!r}"
    fast, slow = scaling.get("beta_fast", 32.0), scaling.get("beta_slow", 1.0)
    if not (_is_number(fast) and _is_number(slow) and fast > slow > 0):
        yield f"rope_scaling needs beta_fast > beta_slow > 0, got {fast!r} and {slow!r}"
