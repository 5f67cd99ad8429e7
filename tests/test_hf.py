"""minids <-> transformers' DeepseekV3ForCausalLM: same logits, same greedy tokens (check 15).

The models use init std 0.1 rather than 0.02: with tiny weights attention is nearly uniform
and a missing YaRN mscale^2 or a wrong RoPE layout moves the logits by only ~5e-4, too
close to the 1e-4 tolerance; at 0.1 such mistakes move them by more than 1.
"""

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minids
from minids import MiniDeepSeek, ModelConfig, generate
from minids.hf import config_from_hf, config_to_hf, from_hf, save_hf, to_hf

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
TOL = 1e-4
TINY = ModelConfig.preset("tiny", initializer_range=0.1)
YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
CASES = {  # name: (config, std of the random balancing bias)
    "tiny_4_groups_top_2": (TINY, 0.0),
    "one_group": (dataclasses.replace(TINY, n_group=1, topk_group=1), 0.0),
    "no_q_lora": (dataclasses.replace(TINY, q_lora_rank=None), 0.0),
    "all_layers_moe": (dataclasses.replace(TINY, first_k_dense_replace=0), 0.0),
    "two_dense_layers": (dataclasses.replace(TINY, first_k_dense_replace=2), 0.0),
    "yarn": (dataclasses.replace(TINY, rope_scaling=YARN, max_position_embeddings=64), 0.0),
    "unnormalised_top_k": (dataclasses.replace(TINY, norm_topk_prob=False), 0.0),
    "dense": (dataclasses.replace(TINY, n_routed_experts=0), 0.0),
    "no_shared_experts": (dataclasses.replace(TINY, n_shared_experts=0), 0.0),
    "balancing_bias": (TINY, 0.2),
}


def random_model(config: ModelConfig, bias_std: float = 0.0, seed: int = 0) -> MiniDeepSeek:
    """Normal(0, initializer_range) matrices, norm weights in [0.5, 1.5], random router biases."""
    torch.manual_seed(seed)
    model = MiniDeepSeek(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)  # a dropped norm mapping would show
        if bias_std:
            for router in model.routers():
                router.bias.normal_(0.0, bias_std)
    return model


def random_tokens(vocab_size: int, shape=(2, 32), seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab_size, shape, generator=torch.Generator().manual_seed(seed))


def selections(model: MiniDeepSeek, tokens: torch.Tensor) -> list[torch.Tensor]:
    """The expert indices (N, K) every router of the main layers picks for tokens."""
    picked = []
    hooks = [r.register_forward_hook(lambda m, i, out: picked.append(out[1]))
             for r in model.routers(mtp=False)]
    with torch.no_grad():
        model(tokens)
    for hook in hooks:
        hook.remove()
    return picked


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("case", list(CASES))
def test_to_hf_logits_match(case):
    config, bias_std = CASES[case]
    model = random_model(config, bias_std)
    tokens = random_tokens(config.vocab_size)
    if bias_std:  # the bias must change some choices, or this case proves nothing
        unbiased = copy.deepcopy(model)
        for router in unbiased.routers():
            router.bias.zero_()
        assert any((a != b).any() for a, b in zip(selections(model, tokens),
                                                  selections(unbiased, tokens)))
    hf_model = to_hf(model)
    assert not hf_model.training and hf_model.dtype == torch.float32
    with torch.no_grad():
        assert max_diff(model(tokens).logits, hf_model(tokens).logits) <= TOL


def hf_random_model(**overrides):
    """A DeepseekV3ForCausalLM made by transformers, with shapes unlike the tiny preset,
    random norm weights and random e_score_correction_bias."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    fields = dict(
        vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
        num_attention_heads=3, num_key_value_heads=3, q_lora_rank=24, kv_lora_rank=16,
        qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, moe_intermediate_size=20,
        n_routed_experts=12, n_shared_experts=2, num_experts_per_tok=3, n_group=3, topk_group=2,
        first_k_dense_replace=1, max_position_embeddings=64, initializer_range=0.1,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 16, "beta_fast": 32.0,
                         "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
        num_mtp_layers=0,
    )
    torch.manual_seed(0)
    hf_model = DeepseekV3ForCausalLM(DeepseekV3Config(**{**fields, **overrides})).eval()
    with torch.no_grad():
        for name, p in hf_model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
        for name, b in hf_model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0.0, 0.2)
    return hf_model


def test_from_hf_logits_match():
    hf_model = hf_random_model()
    assert hf_model.model.layers[1].mlp.gate.e_score_correction_bias.abs().min() > 0
    model = from_hf(hf_model)
    assert model.config.num_mtp_layers == 0 and not model.training
    tokens = random_tokens(hf_model.config.vocab_size)
    with torch.no_grad():
        assert max_diff(model(tokens).logits, hf_model(tokens).logits) <= TOL


def test_round_trip_is_exact():
    model = random_model(TINY, bias_std=0.2)
    back = from_hf(to_hf(model))
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith("mtp.")}
    theirs = back.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_save_hf_loads_with_auto_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = random_model(dataclasses.replace(TINY, rope_scaling=YARN), bias_std=0.2)
    save_hf(model, tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokens = random_tokens(TINY.vocab_size)
    with torch.no_grad():
        assert max_diff(model(tokens).logits, loaded(tokens).logits) <= TOL


def test_greedy_generation_matches_transformers():
    model = random_model(TINY, bias_std=0.2)
    prompt = random_tokens(TINY.vocab_size, shape=(2, 8))
    ours = generate(model, prompt, 20)  # temperature 0: greedy, absorbed decoding
    theirs = to_hf(model).generate(prompt, attention_mask=torch.ones_like(prompt),
                                   max_new_tokens=20, do_sample=False)
    assert len(set(ours[:, 8:].flatten().tolist())) > 5  # varied, so a mismatch would show
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("field, overrides", [
    ("attention_bias", dict(attention_bias=True)),
    ("rope_interleave", dict(rope_interleave=False)),
    ("hidden_act", dict(hidden_act="gelu")),
    ("num_key_value_heads", dict(num_key_value_heads=1)),
    ("rope_type", dict(rope_parameters={"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0})),
    ("mscale", dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                                     "original_max_position_embeddings": 16, "mscale": 0.707,
                                     "mscale_all_dim": 1.0})),
    ("mscale_all_dim", dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4,
                                             "factor": 4.0, "original_max_position_embeddings": 16,
                                             "mscale": 1.0, "mscale_all_dim": 0.0})),
])
def test_from_hf_rejects_unsupported_config(field, overrides):
    with pytest.raises(ValueError, match=field):
        from_hf(hf_random_model(**overrides))


@pytest.mark.parametrize("case", list(CASES))
def test_config_round_trip_keeps_the_function(case):
    config = CASES[case][0]
    back = config_from_hf(config_to_hf(config))
    assert back.softmax_scale == config.softmax_scale
    assert back.rope_scaling == (None if config.rope_scaling is None
                                 else {**YARN, "beta_fast": 32.0, "beta_slow": 1.0})
    assert back.num_mtp_layers == 0
    for layer in range(config.num_hidden_layers):
        assert back.is_moe_layer(layer) == config.is_moe_layer(layer)


def test_importing_minids_does_not_import_transformers():
    code = "import sys, minids, minids.hf; assert 'transformers' not in sys.modules"
    root = Path(minids.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_save_hf_with_the_tokenizer_gives_a_folder_the_auto_classes_load(tmp_path):
    from tests.test_sft_grpo import TOKENIZER, tiny_chat_model

    model = tiny_chat_model().eval()
    save_hf(model, tmp_path, TOKENIZER)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    texts = ["Once upon a time, a fox.", "x = 4\nprint(x * 3)", "12 + 345 = 357"]
    for text in texts:
        assert tokenizer(text)["input_ids"] == TOKENIZER.encode(text, bos=True)
        assert tokenizer.decode(TOKENIZER.encode(text, bos=True), skip_special_tokens=True) == text
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is 3 + 4?"},
                    {"role": "assistant", "content": "7"},
                    {"role": "user", "content": "And 5 + 6?"}]
    rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True)
    assert rendered["input_ids"] == TOKENIZER.chat_prompt(conversation)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2)
    prompt = torch.tensor([TOKENIZER.encode(texts[0], bos=True)])
    theirs = hf_model.generate(prompt, max_length=40, num_return_sequences=1)
    ours = generate(model, prompt, 40 - prompt.shape[1], eos_token_id=TOKENIZER.eos_id)
    assert torch.equal(theirs, ours)


def test_export_hf_on_the_command_line(tmp_path, capsys):
    from minids.__main__ import main
    from tests.test_sft_grpo import TOKENIZER, tiny_chat_model

    minids.save(tiny_chat_model(), tmp_path / "run")
    TOKENIZER.save(tmp_path / "run" / "tokenizer.json")
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "hf"),
                 "--hf", "--device", "cpu"]) == 0
    names = {p.name for p in (tmp_path / "hf").iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json"} <= names
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "hf").pad_token == "<|pad|>"


def mtp_logits_of(mtp_model, hf_model, tokens):
    """transformers' MTP module 1 on every position: h_i (main model) and t_(i+1)."""
    T = tokens.shape[1]
    with torch.no_grad():
        hidden = hf_model.model(tokens).last_hidden_state[:, :-1]
        h = mtp_model.forward_layer(0, hidden, torch.arange(1, T)[None], None,
                                    input_ids=tokens[:, 1:])
        return mtp_model._project_to_logits(h)


def test_the_mtp_module_is_exported_in_deepseeks_layout_and_loads_into_transformers(tmp_path):
    from transformers.modeling_layers import MtpModel

    from minids.hf import allow_mtp_loading, mtp_state

    model = random_model(TINY, bias_std=0.2)
    L = TINY.num_hidden_layers
    keys = set(mtp_state(model))
    assert {f"model.layers.{L}.{n}.weight" for n in ("enorm", "hnorm", "eh_proj",
                                                     "shared_head.norm")} <= keys
    assert f"model.layers.{L}.mlp.experts.0.gate_proj.weight" in keys
    save_hf(model, tmp_path)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    # transformers looks for the MTP weights at DeepSeek-V3's layer 61, and finds none
    with pytest.raises(RuntimeError, match="MtpModel weights are missing"):
        MtpModel.from_pretrained(hf_model)
    mtp_model = MtpModel.from_pretrained(allow_mtp_loading(hf_model)).eval()
    tokens = random_tokens(TINY.vocab_size, shape=(1, 16))
    T = tokens.shape[1]
    with torch.no_grad():
        out = model(tokens)
        _, ours, _ = model.mtp[0](out.hidden[:, :-1], tokens[:, 1:], model.rope_cos[: T - 1],
                                  model.rope_sin[: T - 1])
    assert max_diff(mtp_logits_of(mtp_model, hf_model, tokens), ours) <= TOL
    drafted = hf_model.generate(tokens[:, :8], max_new_tokens=12, do_sample=False, use_mtp=True)
    assert torch.equal(drafted, generate(model, tokens[:, :8], 12))


@pytest.mark.parametrize("kind", ["linear", "ntk"])
def test_only_yarn_exports_to_transformers(kind):
    config = dataclasses.replace(TINY, rope_scaling={**YARN, "type": kind})
    with pytest.raises(ValueError, match="DeepseekV3 takes YaRN"):
        config_to_hf(config)
