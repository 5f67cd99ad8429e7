"""The command line in front of a user who gets things wrong: every bad input gets one line
on stderr and a non-zero exit, never a traceback, and no file that existed is changed.
Then the runs that must not lose work: a folder that holds a run, export onto its own
checkpoint, resume with other flags, Ctrl-C and a closed input."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minids
from minids.__main__ import main
from minids.train import read_log
from tests.test_cli import make_data_folder
from tests.test_sft_grpo import TOKENIZER, tiny_chat_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data folder, a 2-step tiny run, a chat model, and folders and files to trip on."""
    base = tmp_path_factory.mktemp("cli")
    data = make_data_folder(base / "data")
    common = ["--data", str(data), "--device", "cpu"]
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", str(base / "run"),
                 *common]) == 0
    chat = base / "chat"
    minids.save(tiny_chat_model(), chat)
    TOKENIZER.save(chat / "tokenizer.json")
    (base / "a_file").write_text("not a folder")
    for name, text in (("null_config", "null"), ("list_config", "[1, 2]")):
        (base / name).mkdir()
        (base / name / "config.json").write_text(text)
        (base / name / "model.safetensors").write_bytes(b"")
    truncated = base / "truncated_state"
    truncated.mkdir()
    for file in (base / "run").iterdir():
        truncated.joinpath(file.name).write_bytes(file.read_bytes())
    state = truncated / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    (base / "empty").mkdir()
    return base, common


def snapshot(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


BAD_INPUTS = [  # (argv with {base} for the world's folder, what the one line must say)
    ("train --steps 0", "--steps: must be an integer >= 1, got 0"),
    ("train --steps -3", "--steps: must be an integer >= 1, got -3"),
    ("train --steps x", "--steps: invalid integer >= 1 value"),
    ("train --preset huge --out {base}/new", "unknown preset 'huge'"),
    ("train --resume {base}/empty", "nothing to resume in"),
    ("train --resume {base}/missing", "nothing to resume in"),
    ("train --resume {base}/run --preset tiny", "--preset cannot be combined with --resume"),
    ("train --resume {base}/run --fp8", "--fp8 cannot be combined with --resume"),
    ("train --resume {base}/run --out {base}/new", "--out cannot be combined with --resume"),
    ("train --resume {base}/truncated_state", "truncated or corrupt"),
    ("train --resume {base}/null_config", "nothing to resume"),
    ("train --preset tiny --out {base}/run", "holds a run at step 2: use `python -m minids "
     "train --resume"),
    ("train --preset tiny --out {base}/a_file", "is a file, not a folder"),
    ("train --preset tiny --out {base}/new --device bogus", "unknown device 'bogus'"),
    ("train --preset tiny --out {base}/new --device meta", "device 'meta' cannot run a model"),
    ("train --preset tiny --out {base}/new --device mps", "no MPS device"),
    ("train --preset tiny --out {base}/new --device cuda:7", "CUDA device"),
    ("train --preset tiny --out {base}/new --data {base}/empty", "tokenizer"),
    ("train --fly", "unrecognized arguments: --fly"),
    ("sft", "one of the arguments --checkpoint --resume is required"),
    ("sft --checkpoint {base}/run --resume {base}/run", "not allowed with argument"),
    ("sft --checkpoint {base}/missing --out {base}/new", "no checkpoint folder"),
    ("sft --checkpoint {base}/run --out {base}/run", "is the --checkpoint folder"),
    ("sft --checkpoint {base}/chat --out {base}/run", "holds a run at step 2: use `python -m "
     "minids sft --resume"),
    ("sft --checkpoint {base}/run --steps 0", "--steps: must be an integer >= 1, got 0"),
    ("sft --resume {base}/chat", "nothing to resume"),
    ("sft --checkpoint {base}/null_config --out {base}/new", "holds NoneType, not a JSON object"),
    ("sft --checkpoint {base}/list_config --out {base}/new", "holds list, not a JSON object"),
    ("grpo --resume {base}/empty", "nothing to resume"),
    ("grpo --checkpoint {base}/chat --out {base}/chat", "is the --checkpoint folder"),
    ("export --checkpoint {base}/run --out {base}/run", "is the --checkpoint folder"),
    ("export --checkpoint {base}/run --out {base}/chat", "holds a run: use another --out"),
    ("export --checkpoint {base}/run --out {base}/a_file", "is a file, not a folder"),
    ("export --checkpoint {base}/missing --out {base}/new", "no checkpoint folder"),
    ("export --checkpoint {base}/null_config --out {base}/new", "not a JSON object"),
    ("generate --checkpoint {base}/chat", "the following arguments are required: --prompt"),
    ("generate --checkpoint {base}/chat --prompt hi --max-new-tokens 0", "--max-new-tokens"),
    ("generate --checkpoint {base}/chat --prompt hi --max-new-tokens -2", "--max-new-tokens"),
    ("generate --checkpoint {base}/chat --prompt hi --temperature nan", "--temperature"),
    ("generate --checkpoint {base}/chat --prompt hi --temperature inf", "--temperature"),
    ("generate --checkpoint {base}/chat --prompt hi --temperature -1", "--temperature"),
    ("generate --checkpoint {base}/chat --prompt hi --top-k -1", "--top-k"),
    ("generate --checkpoint {base}/chat --prompt hi --device bogus", "unknown device"),
    ("generate --checkpoint {base}/null_config --prompt hi", "not a JSON object"),
    ("generate --checkpoint {base}/a_file --prompt hi", "no checkpoint folder"),
    ("chat --checkpoint {base}/chat --temperature nan", "--temperature"),
    ("chat --checkpoint {base}/chat --max-new-tokens 0", "--max-new-tokens"),
    ("passkey --checkpoint {base}/chat", "the following arguments are required: --length"),
    ("passkey --checkpoint {base}/chat --length 0", "--length"),
    ("passkey --checkpoint {base}/chat --length 50 --trials -3", "--trials"),
    ("passkey --checkpoint {base}/chat --length 5000", "exceed the model's context"),
    ("passkey --checkpoint {base}/none --length 50", "no checkpoint folder"),
    ("distill --checkpoint {base}/chat --out {base}/new", "distill needs --teacher DIR"),
    ("distill --resume {base}/run --teacher {base}/chat", "--teacher cannot be combined"),
    ("distill --checkpoint {base}/chat --teacher {base}/missing --out {base}/new",
     "no checkpoint folder"),
    ("distill --checkpoint {base}/chat --teacher {base}/chat --samples 0 --out {base}/new",
     "--samples"),
    ("grpo --resume {base}/run --shuffle-rewards", "--shuffle-rewards cannot be combined"),
    ("eval --checkpoint {base}/chat --n 0", "--n: must be an integer >= 1"),
    ("eval --checkpoint {base}/chat --samples -1", "--samples"),
    ("eval --checkpoint {base}/chat --task poetry", "invalid choice: 'poetry'"),
    ("eval --checkpoint {base}/chat --samples 2 --temperature 0", "--temperature above 0"),
    ("eval --checkpoint {base}/missing", "no checkpoint folder"),
    ("bench --preset huge", "unknown preset 'huge'"),
    ("bench --seconds 0", "--seconds must be positive"),
    ("fly", "invalid choice: 'fly'"),
]


@pytest.mark.parametrize("command, says", BAD_INPUTS, ids=[c for c, _ in BAD_INPUTS])
def test_a_bad_input_gets_one_line_and_changes_nothing(world, command, says, capsys):
    base, _ = world
    argv = command.format(base=base).split()
    if argv[0] == "train" and "--data" not in argv:
        argv += ["--data", str(base / "data")]
    before = snapshot(base)
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse: usage errors exit with 2
        code = exit_info.code
    err = capsys.readouterr().err.strip()
    assert code not in (0, None)
    assert err.startswith("minids: error:") and "\n" not in err and "Traceback" not in err, err
    assert says in err, err
    assert snapshot(base) == before
    assert not (base / "new").exists()


def test_a_prompt_that_is_not_utf8_gets_one_line(world, capsys):
    base, _ = world
    prompt = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python passes such bytes
    assert main(["generate", "--checkpoint", str(base / "chat"), "--prompt", prompt]) == 1
    assert capsys.readouterr().err.strip() == "minids: error: the prompt is not valid UTF-8 text"


def test_a_full_disk_gets_one_line_and_the_old_files_stay(world, monkeypatch, capsys):
    base, common = world
    before = snapshot(base / "run")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(base / "run" / "model.safetensors"))

    monkeypatch.setattr("minids.checkpoint.save_file", full)
    assert main(["export", "--checkpoint", str(base / "run"), "--out", str(base / "release"),
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("minids: error: no space left on device: ") and "\n" not in err
    assert snapshot(base / "run") == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_gets_one_line(world, tmp_path, capsys):
    base, common = world
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", str(locked / "run"),
                 *common]) == 1
    assert capsys.readouterr().err.startswith("minids: error: permission denied")


# Runs that must not lose work.

def test_a_new_run_over_an_old_one_needs_overwrite(world, tmp_path, capsys):
    base, common = world
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", str(run), *common]) == 0
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", str(run), *common]) == 1
    assert [r["step"] for r in read_log(run)] == [1, 2]  # untouched
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", str(run), "--overwrite",
                 *common]) == 0
    assert [r["step"] for r in read_log(run)] == [1]  # a fresh run, its old log gone


def test_resume_says_when_there_is_nothing_to_do_and_warns_of_a_new_schedule(world, tmp_path,
                                                                            capsys):
    base, common = world
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", str(run), *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), *common]) == 0
    assert capsys.readouterr().out.strip() == "already at step 2 of 2: nothing to do"
    assert main(["train", "--resume", str(run), "--steps", "3", *common]) == 0
    err = capsys.readouterr().err
    assert err.startswith("minids: warning: the run was planned for 2 steps; 3 changes its "
                          "learning-rate schedule from step 2 on")
    assert [r["step"] for r in read_log(run)] == [1, 2, 3]


def test_export_makes_a_new_folder_and_leaves_the_checkpoint_alone(world, tmp_path):
    base, _ = world
    before = snapshot(base / "run")
    assert main(["export", "--checkpoint", str(base / "run"), "--out", str(tmp_path / "rel"),
                 "--device", "cpu"]) == 0
    assert snapshot(base / "run") == before
    assert minids.load(tmp_path / "rel").config == minids.load(base / "run").config


def test_export_keeps_a_distillation_runs_traces(world, tmp_path):
    base, _ = world
    run = tmp_path / "distilled"
    shutil.copytree(base / "run", run)
    (run / "traces.jsonl").write_text('{"problems": 1, "samples": 1}\n')
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "rel"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "rel" / "traces.jsonl").read_text() == (run / "traces.jsonl").read_text()
    assert not (tmp_path / "rel" / "train_state.json").exists()


def test_chat_quits_cleanly_when_its_input_closes(world, monkeypatch, capsys):
    base, _ = world

    def closed(prompt=""):
        raise EOFError

    monkeypatch.setattr("builtins.input", closed)
    assert main(["chat", "--checkpoint", str(base / "chat")]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_ctrl_c_on_the_command_line_saves_the_step_and_the_resume_finishes_the_run(world,
                                                                                   tmp_path):
    base, common = world
    run, straight = tmp_path / "run", tmp_path / "straight"
    assert main(["train", "--preset", "tiny", "--steps", "40", "--out", str(straight),
                 *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "minids", "train", "--preset", "tiny", "--steps", "40",
         "--out", str(run), *common], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    log = run / "log.jsonl"
    while process.poll() is None and not (log.is_file() and log.read_text().count("\n") >= 3):
        pass  # wait for training to be under way
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    step = minids.runs.saved_step(run)
    assert 3 <= step < 40
    assert err.strip() == (f"minids: interrupted: saved step {step} in {run}; resume with "
                           f"`python -m minids train --resume {run}`")
    assert main(["train", "--resume", str(run), *common]) == 0
    for a, b in zip(minids.load(straight).state_dict().values(),
                    minids.load(run).state_dict().values()):
        assert torch.equal(a, b)
    assert [r["step"] for r in read_log(run)] == list(range(1, 41))
