"""The chapters' conventions: the shared setup cell, exercises wired to their checkers,
the table of contents, and notebooks stored as executed. (nbval executes them.)"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minids.exercises import EXERCISES
from minids.exercises.__main__ import main
from minids.exercises.plug import SOCKETS
from minids.exercises.notebooks import (HIDDEN, STUDENT_LINK, has_solution, read_setup_cell,
                                       student_copy, student_copy_text, sync,
                                       sync_student_link)
from tests.chapters import CHAPTERS, CHECK_CALL, CONFIG, REPO, chapter_ids, code_cells, toc_files

SETUP = read_setup_cell(REPO / "book/setup_cell.py")


# The setup cell: one text, every chapter, the repository named once.

def test_the_setup_cell_clones_the_repository_named_in_the_config():
    assert f'REPOSITORY = "{CONFIG["repository"]["url"]}"\n' in SETUP


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_every_chapter_starts_with_the_setup_cell(path):
    first = code_cells(path)[0]
    assert first.source == SETUP, "run: python -m minids.exercises sync"
    assert HIDDEN in first.metadata.get("tags", [])


def run_setup_cell():
    exec(compile(SETUP, "setup_cell.py", "exec"), {})


@pytest.mark.parametrize("start", ["notebooks", "student", "."])
def test_the_setup_cell_moves_to_the_folder_that_holds_data(start, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / start).mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / start)
    run_setup_cell()
    assert Path.cwd() == tmp_path


def test_the_setup_cell_stays_where_no_data_is_near(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_setup_cell()
    assert Path.cwd() == tmp_path


def test_in_colab_the_setup_cell_clones_installs_and_makes_the_data(tmp_path, monkeypatch):
    commands, folders = [], []
    monkeypatch.chdir(tmp_path)  # no data/tokens here: the data must be made
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))
    monkeypatch.setattr(os, "chdir", folders.append)
    monkeypatch.setattr(sys, "path", list(sys.path))
    run_setup_cell()
    url = CONFIG["repository"]["url"]
    assert commands == [
        ["git", "clone", "--depth", "1", url, "/content/minids"],
        [sys.executable, "-m", "pip", "install", "-q", "-e", ".[data]"],  # keeps Colab's torch
        [sys.executable, "-m", "minids", "data"],
    ]
    assert folders == ["/content/minids"]


def test_sync_puts_the_setup_cell_first_and_hides_solutions():
    solution = new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    notebook = new_notebook(cells=[new_markdown_cell("# A chapter"), new_code_cell("x = 1"),
                                   solution])
    assert sync(notebook, SETUP)
    assert [c.source for c in notebook.cells][:3] == ["# A chapter", SETUP, "x = 1"]
    assert HIDDEN in notebook.cells[1].metadata.tags and HIDDEN in solution.metadata.tags
    assert notebook.cells[1].metadata.mystnb["code_prompt_show"] == "Show the setup cell"
    assert solution.metadata.mystnb["code_prompt_show"] == "Show the solution"
    assert not sync(notebook, SETUP)  # in sync now

    notebook.cells[1].source = "# Setup. An older version"
    assert sync(notebook, SETUP) and notebook.cells[1].source == SETUP
    assert sum(c.source == SETUP for c in notebook.cells) == 1


def test_the_sync_command_updates_only_the_notebooks_out_of_sync(tmp_path, capsys):
    for path in CHAPTERS:
        shutil.copy(path, tmp_path)
    stale = tmp_path / CHAPTERS[0].name
    notebook = nbformat.read(stale, as_version=4)
    next(c for c in notebook.cells if c.cell_type == "code").source = "# Setup. Older"
    nbformat.write(notebook, stale)
    args = ["sync", "--notebooks", str(tmp_path), "--setup-cell", str(REPO / "book/setup_cell.py")]
    main(args)
    assert capsys.readouterr().out == f"updated {stale}\n"
    assert code_cells(stale)[0].source == SETUP
    main(args)
    assert capsys.readouterr().out == "every notebook was in sync\n"


# Exercises.

@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_each_solution_is_hidden_and_checked_in_the_next_cell(path):
    cells = code_cells(path)
    for cell, after in zip(cells, cells[1:] + [None]):
        if has_solution(cell):
            assert HIDDEN in cell.metadata.get("tags", []), cell.source
            assert after is not None and CHECK_CALL.search(after.source), cell.source
        for exercise_id in CHECK_CALL.findall(cell.source):
            assert exercise_id in EXERCISES


NUMBERED = [path for path in CHAPTERS if path.name[:2].isdigit()]  # appendices: no exercises


@pytest.mark.parametrize("path", NUMBERED, ids=chapter_ids(NUMBERED))
def test_each_chapter_has_at_least_three_exercises_numbered_in_reading_order(path):
    ids = [i for cell in code_cells(path) for i in CHECK_CALL.findall(cell.source)]
    assert len(ids) >= 3
    assert ids == [f"{path.name[:2]}.{k}" for k in range(1, len(ids) + 1)]


@pytest.mark.parametrize("exercise_id", list(SOCKETS))
def test_every_piece_that_plugs_in_is_shown_in_the_trained_model(exercise_id):
    path = next(p for p in CHAPTERS if p.name.startswith(exercise_id[:2]))
    calls = "".join(cell.source for cell in code_cells(path) if "compare_in_model(" in cell.source)
    assert f'"{exercise_id}"' in calls
    assert "assert plugged.identical or not plugged.attempted" in calls


def test_the_instructors_guide_lists_exactly_the_exercises_of_the_chapters():
    used = {exercise_id for path in CHAPTERS for cell in code_cells(path)
            for exercise_id in CHECK_CALL.findall(cell.source)}
    guide = (REPO / "book/instructor-guide.md").read_text()
    table = guide[guide.index("| chapter | runs in | exercises |"):guide.index("## Writing")]
    assert set(re.findall(r"\b(\d\d\.\d+) ", table)) == used
    listed = set(re.findall(r"^\| (\d\d|[A-Z]) ", table, re.MULTILINE))
    assert listed == {path.name.split("_")[0] for path in CHAPTERS}


# The chapters as stored.

def test_the_table_of_contents_lists_every_chapter_and_only_existing_pages():
    files = toc_files()
    chapters = [f"notebooks/{path.stem}" for path in CHAPTERS]
    assert [f for f in files if f.startswith("notebooks/")] == chapters
    for file in files:
        assert (REPO / f"{file}.md").exists() or (REPO / f"{file}.ipynb").exists(), file


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_each_chapter_is_stored_executed_top_to_bottom(path):
    counts = [cell.execution_count for cell in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), (
        "execute it in place: TQDM_DISABLE=1 jupyter nbconvert --to notebook --execute "
        f"--inplace {path.relative_to(REPO)}")


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_chapter_code_lines_fit_the_page(path):
    """88 characters a line; 86 in a folded cell, whose fold indents it."""
    for cell in code_cells(path):
        limit = 86 if HIDDEN in cell.metadata.get("tags", []) else 88
        for line in cell.source.splitlines():
            assert len(line) <= limit, line


def printed_text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_every_solution_passed_its_checker_when_the_chapter_was_stored(path):
    for cell in code_cells(path):
        for exercise in CHECK_CALL.findall(cell.source):
            assert re.search(rf"^{re.escape(exercise)} .*: passed ", printed_text(cell),
                             re.MULTILINE), cell.source


MACHINE_PATH = re.compile(r"(/work/|/tmp/|/root/|/home/|site-packages)")


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_no_stored_output_shows_an_error_a_machine_path_or_a_progress_bar(path):
    for cell in code_cells(path):
        for output in cell.outputs:
            assert output.output_type != "error", cell.source
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert not MACHINE_PATH.search(text), text
            assert output.get("name") != "stderr" or "it/s]" not in text, text


# Student copies: committed, current, and linked from every chapter.

def test_sync_links_a_chapter_to_its_student_copy_once():
    notebook = new_notebook(cells=[new_markdown_cell("# A chapter"), new_code_cell("x = 1")])
    assert sync_student_link(notebook, "link one")
    assert not sync_student_link(notebook, "link one")
    assert sync_student_link(notebook, "link two")
    assert [c.source for c in notebook.cells] == ["# A chapter", "link two", "x = 1"]
    assert STUDENT_LINK not in nbformat.writes(student_copy(notebook))


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_every_chapter_links_to_its_student_copy_in_colab(path):
    owner_repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    url = (f"https://colab.research.google.com/github/{owner_repo}/blob/"
           f"{CONFIG['repository']['branch']}/student/{path.name}")
    link = nbformat.read(path, as_version=4).cells[1]
    assert STUDENT_LINK in link.metadata.tags and f"]({url})" in link.source


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_ids(CHAPTERS))
def test_the_committed_student_copy_is_current(path):
    copy = REPO / "student" / path.name
    assert copy.exists() and copy.read_text() == student_copy_text(path), (
        "stale: python -m minids.exercises student --force")
