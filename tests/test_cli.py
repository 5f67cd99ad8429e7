import pytest

import minids
from minids.__main__ import main
from tests.test_sft_grpo import TOKENIZER, tiny_chat_model


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("minids: error:") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv", [["train", "--bogus"], ["train", "--steps", "x"], [],
                                  ["generate", "--checkpoint", "x"], ["fly"]])
def test_bad_flags_give_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    one_line_error(capsys)


def test_missing_checkpoint_gives_one_line_and_exit_1(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "none"), "--prompt", "hi"]) == 1
    assert "no checkpoint folder" in one_line_error(capsys)


def test_unknown_preset_and_missing_resume_state(tmp_path, capsys):
    assert main(["train", "--preset", "huge", "--out", str(tmp_path)]) == 1
    assert "unknown preset 'huge'" in one_line_error(capsys)
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "nothing to resume" in one_line_error(capsys)


@pytest.fixture
def run_folder(tmp_path):
    minids.save(tiny_chat_model(), tmp_path)
    TOKENIZER.save(tmp_path / "tokenizer.json")
    return tmp_path


def test_prompt_longer_than_the_context_gives_one_line(run_folder, capsys):
    long_prompt = "word " * 400  # the tiny chat model's context is 256 tokens
    assert main(["generate", "--checkpoint", str(run_folder), "--prompt", long_prompt]) == 1
    assert "the context holds 256" in one_line_error(capsys)


def test_generate_and_chat_print_text(run_folder, capsys):
    assert main(["generate", "--checkpoint", str(run_folder), "--prompt", "Once upon a time",
                 "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("Once upon a time")
    assert main(["chat", "--checkpoint", str(run_folder), "--prompt", "What is 2 + 3?",
                 "--max-new-tokens", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.strip() != ""


def make_data_folder(folder):
    """A data folder as `python -m minids data` leaves it: a tokenizer and packed rows
    (counting sequences, 64 training rows and 16 validation rows of 64 tokens)."""
    from minids.data import save_tokens
    from tests.conftest import counting_batch

    (folder / "tokens").mkdir(parents=True)
    TOKENIZER.save(folder / "tokenizer.json")
    for split, rows in (("train", 64), ("val", 16)):
        save_tokens(counting_batch(rows, 64, vocab=TOKENIZER.vocab_size), folder / "tokens" / f"{split}.npy")
    return folder


def test_train_then_resume_from_the_command_line(tmp_path, capsys):
    from minids.train import read_log

    data = make_data_folder(tmp_path / "data")
    run = tmp_path / "run"
    common = ["--data", str(data), "--device", "cpu"]
    assert main(["train", "--preset", "tiny", "--steps", "3", "--out", str(run), *common]) == 0
    assert main(["train", "--resume", str(run), "--steps", "5", *common]) == 0
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4, 5]
    assert minids.load(run).config.vocab_size == TOKENIZER.vocab_size
