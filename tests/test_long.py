"""Chapter 09's long-context pieces: the rows that teach a model to look back, a model
stretched past its trained length, and a stage started from another run's weights."""

import random

import pytest
import torch

import minids
from minids import long
from minids.corpus.passkey import copy_document
from minids.data import pack
from minids.train import TrainConfig, Trainer, read_log
from tests.conftest import tiny_config
from tests.test_sft_grpo import TOKENIZER


def test_a_copy_document_writes_its_keys_twice():
    first, second = copy_document(random.Random(0), 7).split("\n")
    assert first == " " + second and len(second.split()) == 7
    assert all(len(key) == 5 and key.isdigit() for key in second.split())


@pytest.mark.parametrize("kind", ["copy", "passkey"])
def test_a_document_row_fills_the_row_and_starts_with_its_document(kind):
    rng = random.Random(1)
    for seq_len in (256, 512):
        row = long.document_row(TOKENIZER, seq_len, rng, kind)
        assert len(row) == seq_len + 1 and row[0] == TOKENIZER.bos_id
        text = TOKENIZER.decode(row[: row.index(TOKENIZER.eos_id)], skip_special_tokens=True)
        assert ("The pass key is" in text) == (kind == "passkey")
    with pytest.raises(ValueError, match="kind must be"):
        long.document_row(TOKENIZER, 256, rng, "stories")


def test_the_copy_rows_vary_their_length_so_no_fixed_offset_copies_them():
    rng = random.Random(2)
    lengths = {long.document_row(TOKENIZER, 256, rng, "copy").index(TOKENIZER.eos_id)
               for _ in range(20)}
    assert len(lengths) > 10


def test_a_stretched_model_keeps_the_weights_and_changes_only_the_positions():
    minids.seed(0)
    config = tiny_config(max_position_embeddings=long.ORIGINAL_CONTEXT, vocab_size=128)
    model = minids.MiniDeepSeek(config).eval()
    ids = torch.randint(0, 128, (2, 200))
    same = long.stretched(model, None, context=long.ORIGINAL_CONTEXT)
    torch.testing.assert_close(same(ids).logits, model(ids).logits, rtol=0, atol=0)
    for kind in ("linear", "ntk", "yarn"):
        wide = long.stretched(model, kind)
        assert wide.config.max_position_embeddings == long.FACTOR * long.ORIGINAL_CONTEXT
        assert wide.config.rope_scaling["type"] == kind
        assert not torch.equal(wide.rope_cos[:200], model.rope_cos[:200])
        state = wide.state_dict()
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    plain = long.stretched(model, None)  # plain RoPE, run past its length
    assert torch.equal(plain.rope_cos[: long.ORIGINAL_CONTEXT], model.rope_cos)


def test_a_stage_starts_from_the_weights_it_is_given(tmp_path):
    config = tiny_config(max_position_embeddings=64)
    rows = pack([list(range(5, 60))] * 40, 32, eos_id=2)
    train = TrainConfig(steps=3, batch_size=4, warmup_steps=1, eval_every=3,
                        checkpoint_every=3, progress=False)
    Trainer(config, train, rows, rows, tmp_path / "base").run()
    trained = minids.load(tmp_path / "base")
    stage = Trainer(config, train, rows, rows, tmp_path / "stage",
                    init_from=tmp_path / "base")
    fresh = Trainer(config, train, rows, rows, tmp_path / "fresh")
    for name, value in trained.state_dict().items():
        assert torch.equal(stage.model.state_dict()[name], value), name
    assert not torch.equal(fresh.model.embed.weight, trained.embed.weight)
    assert long.finished(tmp_path / "base", 3) and not long.finished(tmp_path / "base", 4)
    assert not long.finished(tmp_path / "nothing", 1)
    assert read_log(tmp_path / "base")[-1]["step"] == 3


def test_a_finished_stage_keeps_bf16_weights_and_no_optimizer_state(tmp_path, monkeypatch):
    from safetensors import safe_open

    from minids import runs

    stage = long.Stage("base", 128, 2, 4, 1e-3, None, 4)
    monkeypatch.setattr(long, "LONG_MODEL", {**long.LONG_MODEL, "num_hidden_layers": 2})
    long.run_stage(stage, tmp_path, TOKENIZER)
    folder = tmp_path / "base"
    assert long.finished(folder, 2)
    assert not (folder / runs.STATE_TENSORS).exists() and (folder / "tokenizer.json").exists()
    with safe_open(folder / "model.safetensors", "pt") as weights:
        assert weights.get_tensor("embed.weight").dtype == torch.bfloat16
    again = minids.load(folder)
    long.run_stage(stage, tmp_path, TOKENIZER)  # done already: skipped, weights unchanged
    assert torch.equal(minids.load(folder).embed.weight, again.embed.weight)


def test_the_retrieval_probe_finds_nothing_in_an_untrained_model():
    model = minids.MiniDeepSeek(tiny_config(vocab_size=TOKENIZER.vocab_size,
                                            max_position_embeddings=256)).train()
    probe = long.retrieval(model, TOKENIZER, 256)
    assert probe["passkey"] == 0 and 0 <= probe["copy_accuracy"] < 0.05
    assert model.training  # the probe restores the mode it found
