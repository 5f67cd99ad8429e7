import json
import pickle

import pytest
import torch

import minids
from tests.conftest import tiny_model


def test_round_trip_is_bit_exact(tmp_path, tokens):
    model = tiny_model(num_mtp_layers=2)
    for router in model.routers():
        router.bias.normal_()
    minids.save(model, tmp_path / "ckpt")
    loaded = minids.load(tmp_path / "ckpt").eval()
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.mtp[1].embed.weight is loaded.embed.weight  # sharing survives loading
    assert torch.equal(loaded(tokens).logits, model(tokens).logits)


def test_missing_folder_and_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        minids.load(tmp_path / "nowhere")
    minids.save(tiny_model(), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        minids.load(tmp_path)


def test_truncated_weights_raise_value_error(tmp_path):
    minids.save(tiny_model(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        minids.load(tmp_path)


def test_pickle_is_never_unpickled(tmp_path):
    minids.save(tiny_model(), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"embed.weight": torch.zeros(1)}))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        minids.load(tmp_path)


def test_weights_that_do_not_match_the_config_raise_value_error(tmp_path):
    minids.save(tiny_model(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_size"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match config.json.*wrong shape"):
        minids.load(tmp_path)


def test_bad_config_json_raises_value_error(tmp_path):
    minids.save(tiny_model(), tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        minids.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": -1}))
    with pytest.raises(ValueError, match="hidden_size"):
        minids.load(tmp_path)


def test_bf16_release_is_half_the_size_and_loads_as_fp32(tmp_path, tokens):
    model = tiny_model()
    for router in model.routers():
        router.bias.normal_(std=0.01)
    minids.save(model, tmp_path / "fp32")
    minids.save(model, tmp_path / "bf16", dtype=torch.bfloat16)
    full, half = ((tmp_path / d / "model.safetensors").stat().st_size for d in ("fp32", "bf16"))
    assert half < 0.55 * full
    loaded = minids.load(tmp_path / "bf16")
    assert loaded.embed.weight.dtype == torch.float32
    assert torch.equal(loaded.embed.weight, model.embed.weight.to(torch.bfloat16).float())
    assert torch.equal(loaded.layers[1].ffn.gate.bias, model.layers[1].ffn.gate.bias)  # kept fp32
    # bf16 rounding moves the logits a little, not the argmax of a clear winner
    assert (loaded(tokens).logits - model(tokens).logits).abs().max() < 0.05
