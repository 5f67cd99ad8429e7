"""The exercise checkers and the student copies of the chapters."""

import csv
import dataclasses
import time

import nbformat
import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

from minids.exercises import EXERCISES, check
from minids.exercises.checker import Exercise, run
from minids.exercises.__main__ import main
from minids.exercises.ch02 import rmsnorm
from minids.exercises.ch03 import attend_naive
import minids.fp8 as fp8
from minids.generate import speculative_generate
from minids.exercises.ch06 import mtp_loss
from minids.exercises.ch07 import rows_consumed
from minids.exercises.ch08 import _fp8_linear, fp8_operands, fp8_products, limited_sum
from minids.exercises.notebooks import read_setup_cell, strip_solution, student_copy
from tests.chapters import CHAPTERS, CHECK_CALL, REPO, chapter_ids
from tests.conftest import tiny_model
from tests.test_train import RECIPE, trainer

# The checkers.

@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_every_reference_passes_its_checker(exercise_id, capsys):
    result = check(exercise_id, EXERCISES[exercise_id].reference)
    assert result and result.passed
    assert capsys.readouterr().out == result.message + "\n"
    assert "passed" in result.message


MISTAKES = [(e.id, hint) for e in EXERCISES.values() for hint in e.mistakes]


@pytest.mark.parametrize("exercise_id, hint", MISTAKES)
def test_every_known_mistake_earns_its_hint(exercise_id, hint):
    result = check(exercise_id, EXERCISES[exercise_id].mistakes[hint])
    assert not result
    assert result.message.endswith(f"Hint: {hint}")


def correct_rmsnorm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def not_started(x, weight, eps):
    raise NotImplementedError


WRONG_ANSWERS = {
    "transposed": (lambda x, w, eps: correct_rmsnorm(x, w, eps).mT,
                   "off by a transpose: expected shape (2, 5, 16), got (2, 16, 5)"),
    "wrong shape": (lambda x, w, eps: correct_rmsnorm(x, w, eps)[..., :3],
                    "wrong shape: expected (2, 5, 16), got (2, 5, 3)"),
    "flattened": (lambda x, w, eps: correct_rmsnorm(x, w, eps).flatten(),
                  "wrong shape: expected (2, 5, 16), got (160,) (same number of elements"),
    "wrong dtype": (lambda x, w, eps: correct_rmsnorm(x.double(), w.double(), eps),
                    "wrong dtype: expected torch.float32, got torch.float64"),
    "NaN": (lambda x, w, eps: correct_rmsnorm(x, w, eps) * torch.nan,
            "160 of 160 values are NaN or inf"),
    "sign": (lambda x, w, eps: -correct_rmsnorm(x, w, eps), "off by a sign"),
    "close": (lambda x, w, eps: correct_rmsnorm(x, w, eps) * (1 + 1e-3),
              "close, but not within tolerance: max error"),
    "far": (lambda x, w, eps: correct_rmsnorm(x, w, eps) + 1, "wrong values: max error"),
    "no return": (lambda x, w, eps: None, "got None (a missing return?)"),
    "a number": (lambda x, w, eps: 1.0, "expected a tensor of shape (2, 5, 16), got 1.0"),
    "raises": (lambda x, w, eps: x @ w[:3], "<lambda>() raised RuntimeError: "),
    "not yet": (not_started, "02.1 RMSNorm: not yet: not_started() still raises"),
}


@pytest.mark.parametrize("case", list(WRONG_ANSWERS))
def test_a_wrong_answer_gets_its_hint_and_no_exception(case, capsys):
    fn, expected = WRONG_ANSWERS[case]
    result = check("02.1", fn)
    assert not result
    assert expected in result.message
    assert "Traceback" not in capsys.readouterr().out


def test_the_case_and_its_inputs_are_named():
    message = check("02.1", WRONG_ANSWERS["far"][0]).message
    assert message.startswith("02.1 RMSNorm: wrong in case 1 of 3 (x=tensor (2, 5, 16) float32, "
                              "weight=tensor (16,) float32, eps=1e-06): ")


def test_numbers_are_compared_by_value_with_hints():
    assert check("03.3", lambda c, b: float(EXERCISES["03.3"].reference(c, b)))
    doubled = check("03.3", lambda c, b: 2 * EXERCISES["03.3"].reference(c, b))
    assert "off by a factor of 2: got 480, expected 240" in doubled.message
    assert "expected a number, got tensor" in check("03.3", lambda c, b: torch.tensor(1)).message


def test_order_does_not_matter_for_top_k_indices():
    reference = EXERCISES["04.1"].reference
    assert check("04.1", lambda *args: reference(*args).flip(-1))


def test_a_function_that_edits_its_inputs_does_not_change_the_reference():
    def in_place(x, weight, eps):
        x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).mul_(weight)
        return x

    assert check("02.1", in_place)


def test_check_leaves_the_global_random_state_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    check("03.1", attend_naive)  # its cases build an MLA layer, which draws random weights
    assert torch.equal(torch.get_rng_state(), before)


def test_check_on_a_cells_last_line_shows_its_verdict_once():
    result = check("02.1", rmsnorm)  # printed once; IPython displays nothing more
    assert DisplayFormatter().format(result) == ({}, {})


def test_check_answers_a_non_function_and_an_unknown_exercise_in_one_line(capsys):
    assert "expected a function, got 3" in check("02.1", 3).message
    unknown = check("99.9", rmsnorm)
    assert not unknown and unknown.message.startswith("no exercise '99.9'; there are 00.1, ")
    assert capsys.readouterr().out.count("\n") == 2


def test_an_answer_that_never_returns_is_stopped_and_named():
    calls = []

    def forever(x, weight, eps):
        calls.append(1)
        while True:
            pass

    started = time.monotonic()
    result = run(dataclasses.replace(EXERCISES["02.1"], time_limit=0.3), forever)
    assert time.monotonic() - started < 2
    assert "forever() took more than 0.3 s: an infinite loop?" in result.message
    assert len(calls) == 1  # never run again for a hint


def test_a_slow_wrong_answer_runs_once_per_case():
    calls = []

    def slow(x, weight, eps):
        calls.append(1)
        time.sleep(0.05)
        return correct_rmsnorm(x, weight, eps) + 1

    assert "wrong values" in check("02.1", slow).message
    assert len(calls) == len(EXERCISES["02.1"].cases())


def test_close_means_a_small_relative_error_not_zero_or_a_factor():
    zero = check("02.1", lambda x, w, eps: torch.zeros_like(x)).message
    assert "close" not in zero and "wrong values" in zero
    four = check("02.1", lambda x, w, eps: 4 * correct_rmsnorm(x, w, eps)).message
    assert "off by a factor of 4: every value is 4 × the expected one" in four
    bias = check("05.1", lambda bias, load, gamma: bias).message
    assert "returned the input bias unchanged" in bias
    loss = EXERCISES["05.3"].reference
    scaled = check("05.3", lambda *args: 4 * loss(*args)).message
    assert "close" not in scaled and "off by a factor of 4" in scaled


def test_an_exception_is_named_with_its_line_and_no_traceback(capsys):
    def broken(x, weight, eps):
        scale = x.pow(2).mean(-1)
        return x * scale @ weight[:3]

    message = check("02.1", broken).message
    assert "broken() raised RuntimeError: " in message
    assert message.endswith("at line 3 of broken(): return x * scale @ weight[:3]")
    assert "Traceback" not in capsys.readouterr().out


# The references that are not a single minids function agree with the model.

def test_the_naive_and_absorbed_exercises_agree_on_every_case():
    for case in EXERCISES["03.1"].cases():
        naive, absorbed = EXERCISES["03.1"].reference(*case), EXERCISES["03.2"].reference(*case)
        torch.testing.assert_close(absorbed, naive, rtol=0, atol=1e-5)


def test_a_function_returning_several_values_is_checked_value_by_value():
    reference = EXERCISES["06.5"].reference  # returns (tokens, main passes)
    assert check("06.5", lambda *args: list(reference(*args)))
    one_pass_more = check("06.5", lambda *args: (reference(*args)[0], reference(*args)[1] + 1))
    assert "value 2 of 2: got 17, expected 16" in one_pass_more.message
    assert "expected 2 values, got 1" in check("06.5", lambda *a: reference(*a)[:1]).message
    tokens_only = check("06.5", lambda *args: reference(*args)[0]).message
    assert "expected 2 values (a tuple), got tensor (1, 26) int64" in tokens_only


def test_the_speculative_cases_accept_some_drafts_and_reject_others():
    accepted = [speculative_generate(*case).accepted for case in EXERCISES["06.5"].cases()]
    assert accepted == [5, 3, 0]  # as the cases' docstring says


def test_mtp_loss_reference_is_the_models_mtp_loss(tokens):
    model = tiny_model()
    seen = []
    model.mtp[0].register_forward_hook(lambda module, args, output: seen.append(output[1]))
    out = model(tokens[:, :-1], targets=tokens[:, 1:])
    expected = model.config.mtp_loss_weight * mtp_loss(seen[0], tokens[:, 1:], k=1)
    torch.testing.assert_close(out.mtp_loss, expected)


def test_rows_consumed_is_where_the_trainers_data_stands(tmp_path):
    t = trainer(tmp_path, **RECIPE)  # a ramp from 2 to 8 rows of 32 tokens over 384 tokens
    t.run(until_step=5)
    rows = rows_consumed(5, 2, 8, 384, 1, 32)
    assert rows == 2 + 3 + 4 + 6 + 8
    assert (t.batches.epoch, t.batches.row, t.tokens_seen) == (0, rows, rows * 32)


@pytest.mark.parametrize("bits, group", [(14, 4), (8, 1), (8, 32)])
def test_limited_sum_is_the_fp8_gemms_accumulator(bits, group):
    products = fp8_products(5, 3, 256, seed=0)  # (M, N, K) of two E4M3 matrices
    gemm = fp8._chunk_sum(*fp8_operands(5, 3, 256, seed=0), bits, group)  # (M, N) float32
    assert torch.equal(limited_sum(products, bits, group).float(), gemm)
    assert not torch.equal(gemm, products.sum(-1).float())  # the accumulator mattered


def test_an_fp8_layer_that_dequantises_then_multiplies_passes():
    assert check("08.4", lambda layer, x: _fp8_linear(layer, x).detach())


FLOAT8 = torch.float8_e4m3fn
DOUBLE_FLOAT8 = Exercise("99.1", "doubled in float8", lambda: [(torch.randn(3, 8).to(FLOAT8),)],
                         lambda q: (2 * q.float()).to(FLOAT8))


@pytest.mark.parametrize("answer, expected", [
    (lambda q: (2 * q.float()).to(FLOAT8), "passed"),
    (lambda q: q, "returned the input q unchanged"),
    (lambda q: (4 * q.float()).to(FLOAT8), "off by a factor of 2: every value is 2 ×"),
    (lambda q: (2 * q.float()).to(torch.float8_e5m2),
     "wrong dtype: expected torch.float8_e4m3fn, got torch.float8_e5m2"),
    (lambda q: (2 * q.float() + 1).to(FLOAT8), "wrong values: max error"),
])
def test_float8_answers_are_compared_by_value_and_dtype(answer, expected):
    """torch cannot subtract or compare float8 tensors on the CPU: the checker can."""
    assert expected in run(DOUBLE_FLOAT8, answer).message


# Student copies.

def test_strip_solution_keeps_the_code_around_each_solution():
    source = ("def f(x):\n    y = x + 1\n    ### BEGIN SOLUTION\n    y = y * 2\n"
              "    ### END SOLUTION\n    return y\n### BEGIN SOLUTION\nz = 3\n### END SOLUTION")
    assert strip_solution(source) == ("def f(x):\n    y = x + 1\n    raise NotImplementedError\n"
                                      "    return y\nraise NotImplementedError")


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "### BEGIN SOLUTION without ### END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION", "line 2: ### BEGIN SOLUTION inside a solution"),
])
def test_strip_solution_rejects_unbalanced_markers(source, problem):
    with pytest.raises(ValueError, match=problem):
        strip_solution(source)


def example_notebook():
    """A small chapter: the setup cell, an exercise and its checker, and a later cell."""
    return new_notebook(cells=[
        new_markdown_cell("# An example chapter"),
        new_code_cell(read_setup_cell(REPO / "book/setup_cell.py")),
        new_code_cell("import torch\nfrom minids.exercises import check"),
        new_code_cell("def rmsnorm(x, weight, eps):\n    ### BEGIN SOLUTION\n"
                      "    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)\n"
                      "    return x * weight\n    ### END SOLUTION"),
        new_code_cell('check("02.1", rmsnorm)'),
        new_code_cell("assert torch.ones(2).sum() == 2"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})


def execute_as_a_student(notebook, root, monkeypatch):
    """Run the notebook from root/student/, next to the repository's data/ (linked into
    root), as a student copy runs from the repository's student/ folder."""
    (root / "student").mkdir(parents=True)
    (root / "data").symlink_to(REPO / "data")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this minids
    monkeypatch.setenv("TQDM_DISABLE", "1")
    kernel = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME,
                           kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(notebook, km=kernel, timeout=600,
                            resources={"metadata": {"path": str(root / "student")}})
    client.execute()  # raises CellExecutionError if a cell fails
    return notebook


def printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


def checker_cells(notebook):
    return [cell for cell in notebook.cells
            if cell.cell_type == "code" and CHECK_CALL.search(cell.source)]


def test_the_example_chapter_passes_and_its_student_copy_says_not_yet(tmp_path, monkeypatch):
    solved = execute_as_a_student(example_notebook(), tmp_path / "solved", monkeypatch)
    assert printed(checker_cells(solved)[0]).startswith("02.1 RMSNorm: passed")

    copy = student_copy(example_notebook())
    assert "BEGIN SOLUTION" not in nbformat.writes(copy)
    student = execute_as_a_student(copy, tmp_path / "copy", monkeypatch)
    assert printed(checker_cells(student)[0]).startswith("02.1 RMSNorm: not yet: ")


def test_a_student_copy_has_no_outputs():
    chapter = nbformat.read(CHAPTERS[0], as_version=4)
    assert any(cell.get("outputs") for cell in chapter.cells)
    copy = student_copy(chapter)
    assert all(not cell.outputs and cell.execution_count is None
               for cell in copy.cells if cell.cell_type == "code")


def test_the_student_command_writes_a_copy_of_every_chapter(tmp_path, capsys):
    main(["student", "--notebooks", str(REPO / "notebooks"), "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in CHAPTERS]
    assert capsys.readouterr().out.count("wrote ") == len(CHAPTERS)
    main(["list"])
    assert capsys.readouterr().out.splitlines()[0] == "00.1  greedy next token"


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_student_copy_of_each_chapter_runs_and_says_not_yet(path, tmp_path, monkeypatch):
    copy = student_copy(nbformat.read(path, as_version=4))
    student = execute_as_a_student(copy, tmp_path, monkeypatch)
    for cell in checker_cells(student):
        assert " not yet: " in printed(cell), cell.source


# Chapter 01: the BPE encoding reference against `tokenizers`.

def test_bpe_encode_reference_gives_the_tokenizers_encoding():
    from minids.data import generate_part
    from minids.exercises.ch01 import (bpe_encode, byte_level_chars, merges_as_byte_ids,
                                       small_tokenizer)

    tokenizer = small_tokenizer(600)
    merges = merges_as_byte_ids(tokenizer)  # (M, 2) in byte ids; merge k makes 256 + k
    strings = byte_level_chars()  # the string of every byte id, then of every merge
    for a, b in merges.tolist():
        strings.append(strings[a] + strings[b])
    tokenizer_id = [tokenizer.backend.token_to_id(s) for s in strings]
    byte_of = {char: b for b, char in enumerate(byte_level_chars())}
    text = " ".join(generate_part(name, seed=3, chars=3_000)["train"][0]
                    for name in ("stories", "math", "code"))
    text += " Café naïve 深度求索 🙂"
    ids = []
    for word, _ in tokenizer.backend.pre_tokenizer.pre_tokenize_str(text):  # byte-level
        word_bytes = torch.tensor([byte_of[char] for char in word])
        ids += [tokenizer_id[i] for i in bpe_encode(word_bytes, merges).tolist()]
    assert len(ids) > 300
    assert ids == tokenizer.encode(text)


# Instructors: student copies that keep a student's work, and grading a class folder.

def test_the_student_command_keeps_an_edited_copy_unless_forced(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(example_notebook(), notebooks / "02_example.ipynb")
    out = tmp_path / "student"
    args = ["student", "--notebooks", str(notebooks), "--out", str(out)]
    assert main(args) == 0
    copy = out / "02_example.ipynb"
    copy.write_text(copy.read_text().replace("raise NotImplementedError", "return x"))
    edited = copy.read_text()
    assert main(args) == 1
    assert copy.read_text() == edited
    assert "skipped" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert "return x" not in copy.read_text()


def test_the_student_command_fails_in_one_line_without_chapters(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["student", "--notebooks", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit.value.code == 2
    assert capsys.readouterr().err == (f"minids.exercises: error: no chapters (*.ipynb) in "
                                       f"{tmp_path}\n")


def test_grade_runs_a_class_folder_into_a_csv(tmp_path, monkeypatch, capsys):
    """Three students: one solved 02.1, one did not start, one's notebook never ends."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (tmp_path / "data").symlink_to(REPO / "data")
    folder = tmp_path / "class"
    for student in ("ada", "bob", "cy"):
        (folder / student).mkdir(parents=True)
    nbformat.write(example_notebook(), folder / "ada" / "02.ipynb")
    nbformat.write(student_copy(example_notebook()), folder / "bob" / "02.ipynb")
    hangs = student_copy(example_notebook())
    hangs.cells.insert(3, new_code_cell("while True:\n    pass"))
    nbformat.write(hangs, folder / "cy" / "02.ipynb")

    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--timeout", "30", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["student_file"], r["exercise"], r["passed"]) for r in rows] == [
        ("ada/02.ipynb", "02.1", "1"), ("bob/02.ipynb", "02.1", "0"),
        ("cy/02.ipynb", "02.1", "0")]
    assert rows[1]["message"].startswith("02.1 RMSNorm: not yet: ")
    assert rows[2]["message"] == ("not reached: the notebook stopped at cell 4 "
                                  "(TimeoutError after 30 s)")
    printed_lines = capsys.readouterr().out.splitlines()
    assert "02.1 RMSNorm: 1 of 3 passed" in printed_lines
    assert printed_lines[-1] == f"wrote {out}"
