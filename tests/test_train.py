import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minids.train import TrainConfig, Trainer, progress_bar, read_log
from tests.conftest import counting_batch, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def synthetic_tokens(rows, seed):
    return counting_batch(rows, 32, generator=torch.Generator().manual_seed(seed))


def trainer(out_dir, resume=False, **overrides):
    settings = dict(steps=6, batch_size=8, max_lr=1e-2, warmup_steps=2, eval_every=3,
                    eval_batches=2, checkpoint_every=100, progress=False)
    return Trainer(tiny_config(), TrainConfig(**{**settings, **overrides}),
                   synthetic_tokens(64, seed=0), synthetic_tokens(16, seed=1), out_dir,
                   device="cpu", resume=resume)


def without_speed(log):
    return [{k: v for k, v in record.items() if k != "tokens_per_s"} for record in log]


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = trainer(tmp_path / "straight").run()
    trainer(tmp_path / "resumed").run(until_step=4)  # interrupted: saves its state at step 4
    resumed_trainer = trainer(tmp_path / "resumed", resume=True)
    assert resumed_trainer.step == 4
    resumed = resumed_trainer.run()
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # weights, and the routing biases (buffers)
    assert without_speed(read_log(tmp_path / "straight")) == without_speed(read_log(tmp_path / "resumed"))


def test_log_records_every_step_with_its_parts(tmp_path):
    trainer(tmp_path).run()
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    for record in log:
        assert {"loss", "main_loss", "mtp_loss", "balance_loss", "lr", "maxvio",
                "tokens_per_s", "grad_norm"} <= set(record)
    assert "val_loss" in log[2] and "val_maxvio" in log[5] and "val_loss" not in log[0]
    assert log[-1]["main_loss"] < log[0]["main_loss"]
    assert log[1]["lr"] == pytest.approx(1e-2)  # end of the 2-step warmup


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """Compared at the gradients: Adam turns rounding noise in ~0 gradients into full steps."""
    grads = {}
    for accum in (1, 4):
        t = trainer(tmp_path / str(accum), steps=1, grad_accum=accum)
        t.optimizer.step = lambda: grads.setdefault(accum, [p.grad.clone() for p in t.model.parameters()])
        t.run()
    for a, b in zip(grads[1], grads[4]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_bad_train_config_raises_value_error():
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(batch_size=8, grad_accum=3)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from tests.test_train import trainer
trainer({out!r}, resume={resume!r}).run(until_step={until!r})
"""


def run_ddp(tmp_path, out, resume=False, until=None, port=29531):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), out=str(out), resume=resume,
                                        until=until))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={port}", str(script)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_process_ddp_equals_one_process(tmp_path):
    single = trainer(tmp_path / "single").run()
    run_ddp(tmp_path, tmp_path / "ddp")
    from minids import load

    ddp = load(tmp_path / "ddp")
    for (name, a), b in zip(single.state_dict().items(), ddp.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5, msg=name)
    single_log, ddp_log = read_log(tmp_path / "single"), read_log(tmp_path / "ddp")
    assert [r["main_loss"] for r in ddp_log] == pytest.approx([r["main_loss"] for r in single_log], abs=1e-4)


def test_a_two_process_run_resumes_exactly_and_logs_each_step_once(tmp_path):
    from minids import load

    run_ddp(tmp_path, tmp_path / "straight", port=29532)
    run_ddp(tmp_path, tmp_path / "resumed", until=3, port=29533)
    run_ddp(tmp_path, tmp_path / "resumed", resume=True, port=29534)
    straight, resumed = load(tmp_path / "straight"), load(tmp_path / "resumed")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["step"] for r in read_log(tmp_path / "resumed")] == [1, 2, 3, 4, 5, 6]


def test_rows_longer_than_the_context_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="rows of 80 tokens exceed the context of 64"):
        Trainer(tiny_config(), TrainConfig(steps=1, batch_size=8, progress=False),
                counting_batch(16, 80), synthetic_tokens(16, seed=1),
                tmp_path, device="cpu")


def test_the_progress_bar_hides_when_asked_or_when_tqdm_disable_is_set(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not progress_bar(range(3)).disable
    assert progress_bar(range(3), show=False).disable
    monkeypatch.setenv("TQDM_DISABLE", "1")  # chapters are executed with it, bars left out
    assert progress_bar(range(3)).disable


# V3's recipe: schedules of the batch size, λ and γ, and bf16 autocast.

RECIPE = dict(warmup_from_zero=True, lr_tails=((1, 0.05),), batch_ramp=(2, 384),
              mtp_loss_weights=((0, 0.3), (4, 0.1)), bias_update_speeds=((0, 1e-3), (5, 0.0)))


def test_the_recipe_is_followed_and_logged(tmp_path):
    log_trainer = trainer(tmp_path, **RECIPE)
    log_trainer.run()
    log = read_log(tmp_path)
    assert [r["batch_size"] for r in log] == [2, 3, 4, 6, 8, 8]  # rows of 32 tokens
    assert [r["mtp_loss_weight"] for r in log] == [0.3] * 4 + [0.1] * 2
    assert [r["bias_update_speed"] for r in log] == [1e-3] * 5 + [0.0]
    assert log[0]["lr"] == 0 and log[-1]["lr"] == pytest.approx(0.05 * 1e-2)


def test_resume_across_the_batch_ramp_equals_the_straight_run(tmp_path):
    straight = trainer(tmp_path / "straight", **RECIPE).run()
    trainer(tmp_path / "resumed", **RECIPE).run(until_step=3)  # mid-ramp
    resumed = trainer(tmp_path / "resumed", resume=True, **RECIPE)
    assert resumed.tokens_seen == (2 + 3 + 4) * 32
    final = resumed.run()
    for a, b in zip(straight.state_dict().values(), final.state_dict().values()):
        assert torch.equal(a, b)
    assert without_speed(read_log(tmp_path / "straight")) == without_speed(read_log(tmp_path / "resumed"))


def test_the_bias_stops_moving_when_its_speed_reaches_zero(tmp_path):
    t = trainer(tmp_path, **RECIPE)
    t.run(until_step=5)
    before = [r.bias.clone() for r in t.model.routers()]
    t.run()  # step 6 runs at gamma = 0
    assert all(torch.equal(a, r.bias) for a, r in zip(before, t.model.routers()))


def test_bf16_autocast_trains_with_fp32_weights_close_to_fp32(tmp_path):
    fp32 = trainer(tmp_path / "fp32", steps=12).run()
    bf16_trainer = trainer(tmp_path / "bf16", steps=12, precision="bf16")
    bf16 = bf16_trainer.run()
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert all(r.bias.dtype == torch.float32 for r in bf16.routers())
    loss = {name: read_log(tmp_path / name)[-1]["val_loss"] for name in ("fp32", "bf16")}
    assert abs(loss["bf16"] - loss["fp32"]) / loss["fp32"] < 0.02, loss
    assert not all(torch.equal(a, b) for a, b in zip(fp32.parameters(), bf16.parameters()))
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="cannot be combined"):
        TrainConfig(fp8=True, precision="bf16")
