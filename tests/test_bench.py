import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from minids import MiniDeepSeek, ModelConfig, bench
from minids.__main__ import main
from tests.conftest import tiny_config
from tests.test_cli import make_data_folder


@pytest.mark.parametrize("overrides", [dict(num_mtp_layers=0), dict(), dict(num_mtp_layers=2),
                                       dict(q_lora_rank=None, first_k_dense_replace=0)])
def test_training_flops_equal_torch_flop_counter(overrides):
    # On the math attention kernel every matmul runs as mm/bmm, which torch's counter sees
    # (it does not see the fused CPU kernel): the formula must account for each one, routed
    # experts (top-k of them) and the MTP depths included. MLA pads v with zeros to the
    # q/k head size for the fused kernels; the formula counts useful FLOPs only, so the
    # multiplications by the padding, 2 B n^2 H (qk - v) per block forward, are added here.
    c = config = tiny_config(**overrides)
    B, T = 2, 32
    model = MiniDeepSeek(config)
    rows = torch.randint(0, config.vocab_size, (B, T + 1))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(rows[:, :-1], rows[:, 1:]).loss.backward()
    lengths = [T] * c.num_hidden_layers + [T - k for k in range(1, c.num_mtp_layers + 1)]
    pad_width = c.num_attention_heads * (c.qk_head_dim - c.v_head_dim)
    padding = sum(3 * 2 * B * n**2 * pad_width for n in lengths)  # forward + backward = 3x
    expected = bench.training_flops(config, batch_size=B, seq_len=T) + padding
    assert expected == counter.get_total_flops()


def test_dense_baseline_matches_active_params():
    config = ModelConfig.preset("book")
    dense = bench.dense_baseline(config)
    assert dense.attention == "gqa" and dense.n_kv_heads == dense.num_attention_heads  # MHA
    assert dense.n_routed_experts == 0 and dense.num_mtp_layers == 0
    with torch.device("meta"):
        active = MiniDeepSeek(config).num_params(active=True)
        dense_params = MiniDeepSeek(dense).num_params()
    # the FFN width moves in steps of 8: one step is 3 * layers * hidden * 8 parameters
    assert abs(dense_params - active) <= 3 * config.num_hidden_layers * config.hidden_size * 4
    # tiny's MLA is smaller than multi-head attention alone: no dense model can match it
    with pytest.raises(ValueError, match="no dense baseline matches"):
        bench.dense_baseline(tiny_config(vocab_size=512, hidden_size=64))


def test_matmul_peak_is_a_rate():
    peak = bench.matmul_peak("cpu", sizes=(128,), repeats=2)
    assert 1e8 < peak < 1e13  # between 0.1 GFLOP/s and 10 TFLOP/s on any CPU


def test_bench_command_reports_and_writes_json(tmp_path, capsys):
    data = make_data_folder(tmp_path / "data")
    out = tmp_path / "bench.json"
    argv = ["bench", "--preset", "tiny", "--seconds", "1", "--data", str(data), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "of the fp32 matmul peak" in printed and "of the bf16 matmul peak" in printed
    assert "val loss" in printed
    figures = json.loads(out.read_text())
    assert 0 < figures["mfu"] < 1 and 0 < figures["bf16"]["mfu"] < 1
    assert figures["bf16"]["matmul_peak_flops"] > 0 and figures["bf16"]["tokens_per_s"] > 0
    assert set(figures["runs"]) == {"tiny", "tiny_no_mtp", "dense"}
    assert all(run["steps"] >= 1 and run["val_loss"] > 0 for run in figures["runs"].values())


def test_bench_rejects_bad_flags(capsys):
    assert main(["bench", "--preset", "huge"]) == 1
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert main(["bench", "--seconds", "0"]) == 1
    assert "--seconds must be positive" in capsys.readouterr().err
