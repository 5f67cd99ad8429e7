"""Conversion to and from `transformers`' DeepseekV3ForCausalLM (REFERENCE §10, check 15).

The two models compute the same function, so conversion only renames tensors:

    minids                          transformers
    embed / norm / head             model.embed_tokens / model.norm / lm_head
    layers.i.attn_norm, ffn_norm    model.layers.i.input_layernorm, post_attention_layernorm
    attn.wq | wq_a, q_norm, wq_b    self_attn.q_proj | q_a_proj, q_a_layernorm, q_b_proj
    attn.wkv_a, kv_norm, wkv_b, wo  self_attn.kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj
    ffn.w1, w3, w2 (dense, shared)  mlp.gate_proj, up_proj, down_proj (or mlp.shared_experts.*)
    ffn.gate.weight, gate.bias      mlp.gate.weight, mlp.gate.e_score_correction_bias
    ffn.experts.w1, w3 (E, I, H)    mlp.experts.gate_up_proj (E, 2I, H): gate rows first
    ffn.experts.w2 (E, H, I)        mlp.experts.down_proj (E, H, I)

Row layouts agree (each query head [nope | rope], kv_a [latent | k_rope], each kv_b head
[k_nope | v]) and both rotate interleaved pairs (`rope_interleave=True`), so no tensor is
permuted. YaRN maps to `rope_parameters` with mscale = mscale_all_dim = 1: cos/sin stay
unscaled and the softmax scale gains mscale^2, as ours does. DeepseekV3ForCausalLM holds no
MTP modules: `to_hf` drops ours, and `from_hf` returns a model with num_mtp_layers = 0.

`transformers` is imported inside the functions only: `import minids` never needs it.
"""

from pathlib import Path

import torch

from minids.config import ModelConfig
from minids.model import MiniDeepSeek

SHARED_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
    "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "n_group", "topk_group", "routed_scaling_factor", "norm_topk_prob", "first_k_dense_replace",
    "max_position_embeddings", "rms_norm_eps", "initializer_range",
)
# Our module names -> theirs, one dotted component at a time ("layers.0.attn.wq_a.weight").
_NAMES = {
    "embed": "embed_tokens", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn": "self_attn", "wq": "q_proj", "wq_a": "q_a_proj", "q_norm": "q_a_layernorm",
    "wq_b": "q_b_proj", "wkv_a": "kv_a_proj_with_mqa", "kv_norm": "kv_a_layernorm",
    "wkv_b": "kv_b_proj", "wo": "o_proj", "ffn": "mlp", "w1": "gate_proj", "w3": "up_proj",
    "w2": "down_proj", "bias": "e_score_correction_bias",
}
_OUR_NAMES = {theirs: ours for ours, theirs in _NAMES.items()}


def config_to_hf(config: ModelConfig):
    """A DeepseekV3Config for the main model (no MTP, no special token ids)."""
    from transformers import DeepseekV3Config

    if config.attention != "mla":
        raise ValueError(f"attention={config.attention!r}: DeepseekV3 has MLA attention only")
    fields = {name: getattr(config, name) for name in SHARED_FIELDS}
    rope = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling is not None:
        s = config.rope_scaling
        if s["type"] != "yarn":
            raise ValueError(f"rope_scaling type {s['type']!r} is for comparison only; "
                             "DeepseekV3 takes YaRN (type 'yarn')")
        rope.update(rope_type="yarn", factor=float(s["factor"]),
                    original_max_position_embeddings=s["original_max_position_embeddings"],
                    beta_fast=float(s.get("beta_fast", 32.0)),
                    beta_slow=float(s.get("beta_slow", 1.0)), mscale=1.0, mscale_all_dim=1.0)
    if config.n_routed_experts == 0:  # dense: no layer reaches the (unused) routing fields
        fields["first_k_dense_replace"] = config.num_hidden_layers
    return DeepseekV3Config(
        **fields, rope_parameters=rope, num_key_value_heads=config.num_attention_heads,
        hidden_act="silu", attention_bias=False, rope_interleave=True, tie_word_embeddings=False,
        num_mtp_layers=0, bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )


def config_from_hf(hf_config) -> ModelConfig:
    """Our config for a DeepseekV3Config; ValueError names any field we cannot represent."""
    c = hf_config
    for field, wanted in (("attention_bias", False), ("rope_interleave", True),
                          ("hidden_act", "silu"), ("num_key_value_heads", c.num_attention_heads)):
        if getattr(c, field) != wanted:
            raise ValueError(f"{field}={getattr(c, field)!r} is not supported "
                             f"(minids needs {wanted!r})")
    fields = {name: getattr(c, name) for name in SHARED_FIELDS}
    fields.update(n_group=c.n_group or 1, topk_group=c.topk_group or 1,
                  norm_topk_prob=bool(c.norm_topk_prob),
                  first_k_dense_replace=min(c.first_k_dense_replace or 0, c.num_hidden_layers))
    if fields["first_k_dense_replace"] == c.num_hidden_layers:
        fields["n_routed_experts"] = 0  # every layer dense: the routing fields are unused
    rope = dict(c.rope_parameters)
    fields["rope_theta"] = float(rope["rope_theta"])
    fields["rope_scaling"] = _rope_scaling_from_hf(rope, c.max_position_embeddings)
    return ModelConfig(**fields, num_mtp_layers=0)


def _rope_scaling_from_hf(rope: dict, max_position_embeddings: int) -> dict | None:
    kind = rope.get("rope_type", "default")
    if kind not in ("default", "yarn"):
        raise ValueError(f"rope_parameters rope_type={kind!r} is not supported (default or yarn)")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"rope_parameters partial_rotary_factor={rope['partial_rotary_factor']!r} "
                         f"is not supported (minids rotates all qk_rope_head_dim channels)")
    if kind == "default":
        return None
    # mscale = mscale_all_dim = 1: cos/sin unscaled, softmax scale times mscale(factor)^2.
    for key, allowed in (("mscale", (1.0,)), ("mscale_all_dim", (1.0,)),
                         ("attention_factor", (None, 1.0)), ("truncate", (None, True))):
        if rope.get(key) not in allowed:
            raise ValueError(f"rope_parameters {key}={rope.get(key)!r} is not supported "
                             f"(minids needs one of {allowed})")
    original = rope["original_max_position_embeddings"]
    return {
        "type": "yarn", "factor": float(rope.get("factor") or max_position_embeddings / original),
        "original_max_position_embeddings": original,
        "beta_fast": float(rope.get("beta_fast") or 32.0),
        "beta_slow": float(rope.get("beta_slow") or 1.0),
    }


def _hf_key(name: str) -> str:
    """'layers.0.attn.wq_a.weight' -> 'model.layers.0.self_attn.q_a_proj.weight'."""
    if name == "head.weight":
        return "lm_head.weight"
    return "model." + ".".join(_NAMES.get(part, part) for part in name.split("."))


def _our_key(key: str) -> str:
    if key == "lm_head.weight":
        return "head.weight"
    return ".".join(_OUR_NAMES.get(part, part) for part in key.removeprefix("model.").split("."))


def _to_hf_state(state: dict) -> dict:
    out = {}
    for name, tensor in state.items():
        if name.startswith("mtp."):
            continue  # no MTP in DeepseekV3ForCausalLM
        if name.endswith("experts.w1"):
            prefix = name.removesuffix("w1")
            gate_up = torch.cat([tensor, state[prefix + "w3"]], dim=1)  # (E, 2I, H): gate first
            out[_hf_key(prefix + "gate_up_proj")] = gate_up
        elif not name.endswith("experts.w3"):
            out[_hf_key(name)] = tensor  # experts.w2 -> experts.down_proj, (E, H, I) both
    return out


def _from_hf_state(state: dict) -> dict:
    out = {}
    for key, tensor in state.items():
        if tensor.numel() == 0:
            continue  # transformers' zero-width shared experts when n_shared_experts = 0
        name = _our_key(key)
        if name.endswith("experts.gate_up_proj"):
            prefix = name.removesuffix("gate_up_proj")
            out[prefix + "w1"], out[prefix + "w3"] = tensor.chunk(2, dim=1)  # (E, I, H) each
        else:
            out[name] = tensor
    return out


def to_hf(model: MiniDeepSeek, attn_implementation: str = "sdpa"):
    """A DeepseekV3ForCausalLM (fp32, eval mode, on the model's device) with the same logits.
    The MTP modules are dropped: transformers' causal LM has no place for them.
    attn_implementation "sdpa" and "eager" both match ours to ~1e-6."""
    from transformers import DeepseekV3ForCausalLM

    hf_config = config_to_hf(model.config)
    hf_config._attn_implementation = attn_implementation
    device = model.embed.weight.device
    with torch.device(device):
        hf_model = DeepseekV3ForCausalLM(hf_config)
    state = {k: v.detach().float() for k, v in _to_hf_state(model.state_dict()).items()}
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    theirs = hf_model.state_dict()
    left_out = [k for k in missing if theirs[k].numel() > 0]  # n_shared_experts = 0: empty
    if left_out or unexpected:
        raise RuntimeError(f"to_hf: missing {left_out}, unexpected {unexpected}")
    return hf_model.float().eval()


def from_hf(hf_model) -> MiniDeepSeek:
    """A MiniDeepSeek (fp32, eval mode, num_mtp_layers = 0) with the same logits as hf_model.
    A tied output head becomes an untied copy of the embedding."""
    config = config_from_hf(hf_model.config)
    with torch.device(hf_model.device):
        model = MiniDeepSeek(config)
    model.load_state_dict(_from_hf_state(hf_model.state_dict()))
    return model.float().eval()


# The chat template of minids.tokenizer.Tokenizer.chat_prompt, in the Jinja that
# transformers' apply_chat_template renders: the same ids, turn for turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}<|eos|>"
    "{% else %}{{ raise_exception('unknown chat role ' + message['role']) }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def save_hf(model: MiniDeepSeek, path, tokenizer=None) -> Path:
    """Write a folder that transformers' AutoModelForCausalLM.from_pretrained(path) loads,
    offline. With a minids Tokenizer, AutoTokenizer.from_pretrained(path) loads too
    (save_hf_tokenizer), the config names the special tokens, and generation_config.json
    makes model.generate greedy and stop at <|eos|>, as minids' chat does. The MTP
    modules are stored as DeepSeek-V3's release stores them (mtp_state); see
    allow_mtp_loading for generate(use_mtp=True). Returns path."""
    from safetensors.torch import load_file, save_file
    from transformers import GenerationConfig

    path = Path(path)
    hf_model = to_hf(model)
    hf_model.config.num_mtp_layers = len(model.mtp)
    if tokenizer is not None:
        special = dict(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                       pad_token_id=tokenizer.pad_id)
        for name, value in special.items():
            setattr(hf_model.config, name, value)
        hf_model.generation_config = GenerationConfig(**special, do_sample=False)
    hf_model.save_pretrained(path)
    if model.mtp:
        weights = path / "model.safetensors"
        tensors = {**load_file(str(weights)), **mtp_state(model)}
        save_file(tensors, str(weights), metadata={"format": "pt"})
    if tokenizer is not None:
        save_hf_tokenizer(tokenizer, path, model.config.max_position_embeddings)
    return path


# minids' 3-D expert banks -> transformers' on-disk per-expert matrices
_EXPERT_MATRICES = {"experts.w1": "gate_proj", "experts.w3": "up_proj", "experts.w2": "down_proj"}


def mtp_state(model: MiniDeepSeek) -> dict[str, torch.Tensor]:
    """The MTP modules as DeepSeek-V3's released checkpoint stores them: module k (1..D)
    is `model.layers.{L + k - 1}`, a decoder layer under the names transformers writes
    to disk (one key per expert and matrix), plus enorm, hnorm, eh_proj (M_k) and
    shared_head.norm (our module's final norm). Embedding and head are the main model's."""
    L, out = model.config.num_hidden_layers, {}
    for k, module in enumerate(model.mtp):
        prefix = f"model.layers.{L + k}."
        for name, tensor in module.block.state_dict().items():
            kind = next((v for k, v in _EXPERT_MATRICES.items() if name.endswith(k)), None)
            if kind is None:
                out[prefix + _hf_key(name).removeprefix("model.")] = tensor
                continue
            experts = _hf_key(name.rsplit(".", 1)[0]).removeprefix("model.")  # ...mlp.experts
            for i, expert in enumerate(tensor):  # w1[i], w3[i]: (I, H); w2[i]: (H, I)
                out[f"{prefix}{experts}.{i}.{kind}.weight"] = expert
        for ours, theirs in (("enorm", "enorm"), ("hnorm", "hnorm"), ("eh_proj", "eh_proj"),
                             ("norm", "shared_head.norm")):
            out[f"{prefix}{theirs}.weight"] = getattr(module, ours).weight
    return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


def allow_mtp_loading(hf_model):
    """Let transformers' generate(use_mtp=True) find the MTP modules of a save_hf folder.
    transformers 5.23 looks for them under DeepSeek-V3's own layer number, `model.layers.61`
    (DeepseekV3ForCausalLM._keys_to_ignore_on_load_unexpected): for a model of L layers
    this points the instance at `model.layers.L` instead. Returns hf_model."""
    L, D = hf_model.config.num_hidden_layers, hf_model.config.num_mtp_layers
    hf_model._keys_to_ignore_on_load_unexpected = [rf"model\.layers\.{L + k}\..*"
                                                   for k in range(D)]
    return hf_model


def save_hf_tokenizer(tokenizer, path, model_max_length: int) -> None:
    """tokenizer.json and tokenizer_config.json for transformers' AutoTokenizer: the same
    BPE, with <|bos|> put in front of a text (as Tokenizer.encode(text, bos=True) does),
    <|bos|>/<|eos|>/<|pad|> named, and the chat template. One difference is transformers'
    convention: a literal "<|eos|>" in a text is read as the special token, where minids
    keeps it as text."""
    import json

    from tokenizers import Tokenizer as Backend, processors

    backend = Backend.from_str(tokenizer.backend.to_str())
    backend.encode_special_tokens = False  # so that the chat template's markers are tokens
    bos = tokenizer.id_to_token(tokenizer.bos_id)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_id)])
    path = Path(path)
    backend.save(str(path / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos,
        "eos_token": tokenizer.id_to_token(tokenizer.eos_id),
        "pad_token": tokenizer.id_to_token(tokenizer.pad_id), "chat_template": CHAT_TEMPLATE,
        "model_max_length": model_max_length, "clean_up_tokenization_spaces": False,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
