"""Run folders: no interruption loses work or tears a checkpoint, and a resumed run equals
an uninterrupted one, for pretraining, SFT and GRPO (minids.runs)."""

import os
import signal

import pytest
import torch

import minids
from minids import runs
from minids.grpo import GRPOConfig, grpo
from minids.runs import READY, STAGING, RunInterrupted
from minids.sft import SFTConfig, sft
from minids.train import read_log
from tests.test_sft_grpo import TOKENIZER, tiny_chat_model
from tests.test_train import trainer, without_speed


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def interrupt_at_call(monkeypatch, owner, name: str, call: int):
    """Wrap owner.name so that its call-th call sends this process a SIGINT, as Ctrl-C
    would, while the loop runs."""
    original, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


# Pretraining.

def test_ctrl_c_finishes_the_step_saves_it_and_the_resume_equals_the_straight_run(
        tmp_path, monkeypatch):
    straight = trainer(tmp_path / "straight").run()
    with monkeypatch.context() as patch, pytest.raises(
            RunInterrupted, match=r"saved step 4 in .*; resume with `python -m minids train "
                                  r"--resume "):
        interrupt_at_call(patch, minids.train.Trainer, "train_step", 4)
        trainer(tmp_path / "run").run()
    assert runs.saved_step(tmp_path / "run") == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = trainer(tmp_path / "run", resume=True).run()
    assert same_weights(straight, resumed)
    assert without_speed(read_log(tmp_path / "run")) == without_speed(read_log(tmp_path / "straight"))


def test_a_second_ctrl_c_stops_at_once():
    with pytest.raises(KeyboardInterrupt), runs.GracefulStop() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        signal.raise_signal(signal.SIGINT)


def test_steps_logged_after_the_last_checkpoint_are_logged_once_after_the_resume(
        tmp_path, monkeypatch):
    straight = trainer(tmp_path / "straight", checkpoint_every=2).run()

    original = minids.train.Trainer.train_step

    def killed(self):  # the process dies during step 6, after step 5 was logged
        if self.step == 5:
            raise SystemExit("killed")
        return original(self)

    with monkeypatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(minids.train.Trainer, "train_step", killed)
        trainer(tmp_path / "run", checkpoint_every=2).run()
    assert [r["step"] for r in read_log(tmp_path / "run")] == [1, 2, 3, 4, 5]
    resumed = trainer(tmp_path / "run", resume=True, checkpoint_every=2)
    assert resumed.step == 4
    assert same_weights(straight, resumed.run())
    assert [r["step"] for r in read_log(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("moment", ["while writing", "while moving"])
def test_a_kill_during_a_save_leaves_a_whole_checkpoint(tmp_path, monkeypatch, moment):
    straight = trainer(tmp_path / "straight", checkpoint_every=2).run()
    if moment == "while writing":  # the state file of step 4 is never finished
        original = runs.save_file

        def dies(tensors, path, metadata=None):
            if metadata and metadata.get("step") == "4":
                raise SystemExit("killed")
            return original(tensors, path, metadata=metadata)

        monkeypatch.setattr(runs, "save_file", dies)
        expected_step = 2
    else:  # step 4's files are complete; the kill comes after the first one is moved in
        original, moved = os.replace, []

        def dies(source, target):
            if READY in str(source):
                if len(moved) == 5:  # step 2's four files, then one of step 4's
                    raise SystemExit("killed")
                moved.append(source)
            return original(source, target)

        monkeypatch.setattr(runs.os, "replace", dies)
        expected_step = 4
    with pytest.raises(SystemExit):
        trainer(tmp_path / "run", checkpoint_every=2).run()
    monkeypatch.undo()
    assert runs.saved_step(tmp_path / "run") == expected_step  # recovered: finished or undone
    assert not (tmp_path / "run" / STAGING).exists() and not (tmp_path / "run" / READY).exists()
    assert same_weights(straight, trainer(tmp_path / "run", resume=True, checkpoint_every=2).run())


def test_files_of_different_steps_are_refused_as_a_torn_checkpoint(tmp_path):
    trainer(tmp_path / "a", steps=2, checkpoint_every=1).run()
    trainer(tmp_path / "b", steps=4, checkpoint_every=1).run()
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="torn checkpoint: train_state.json is at step 2, "
                       "model.safetensors at step 4"):
        trainer(tmp_path / "a", resume=True)


def test_a_library_run_refuses_a_folder_that_holds_a_run(tmp_path):
    trainer(tmp_path, steps=1).run()
    with pytest.raises(ValueError, match="holds a run: resume it"):
        trainer(tmp_path)


def test_saved_files_are_as_readable_as_the_umask_says(tmp_path):
    previous = os.umask(0o022)
    try:
        trainer(tmp_path, steps=1).run()
    finally:
        os.umask(previous)
    for name in ("model.safetensors", "config.json", "train_state.safetensors", "train_state.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


# SFT and GRPO.

SFT = dict(steps=6, batch_size=4, max_lr=3e-3, warmup_steps=2, eval_problems=4,
           checkpoint_every=2, progress=False)


def test_an_interrupted_sft_run_resumes_to_the_straight_runs_weights(tmp_path, monkeypatch):
    straight = sft(tiny_chat_model(), TOKENIZER, SFTConfig(**SFT), out_dir=tmp_path / "straight")
    with monkeypatch.context() as patch, pytest.raises(
            RunInterrupted, match="saved step 3 .*python -m minids sft --resume"):
        interrupt_at_call(patch, minids.sft, "optimizer_step", 3)
        sft(tiny_chat_model(), TOKENIZER, SFTConfig(**SFT), out_dir=tmp_path / "run")
    resumed = sft(tiny_chat_model(seed=1), TOKENIZER, SFTConfig(**SFT), out_dir=tmp_path / "run",
                  resume=True)  # a different model passed in: the saved weights win
    assert same_weights(straight, resumed)
    assert read_log(tmp_path / "run") == read_log(tmp_path / "straight")
    assert runs.saved_step(tmp_path / "run") == 6


GRPO = dict(steps=3, prompts_per_step=2, group_size=4, max_new_tokens=8, eval_problems=4,
            eval_every=0, checkpoint_every=1, lr=1e-2, progress=False)


def test_an_interrupted_grpo_run_resumes_to_the_straight_runs_weights(tmp_path, monkeypatch):
    monkeypatch.setattr("minids.grpo.reward", lambda reply, answer, format_reward: len(reply) % 3)
    straight = grpo(tiny_chat_model(), TOKENIZER, GRPOConfig(**GRPO), out_dir=tmp_path / "straight")
    with monkeypatch.context() as patch, pytest.raises(RunInterrupted, match="saved step 2"):
        interrupt_at_call(patch, minids.grpo, "grpo_step", 2)
        grpo(tiny_chat_model(), TOKENIZER, GRPOConfig(**GRPO), out_dir=tmp_path / "run")
    resumed = grpo(tiny_chat_model(seed=1), TOKENIZER, GRPOConfig(**GRPO), out_dir=tmp_path / "run",
                   resume=True)  # the reference comes from the run folder, not this model
    assert same_weights(straight, resumed)
    assert read_log(tmp_path / "run") == read_log(tmp_path / "straight")

