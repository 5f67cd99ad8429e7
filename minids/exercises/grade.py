"""Grading a class: run every student notebook in a folder and collect the checkers' verdicts.

    python -m minids.exercises grade CLASS_DIR --timeout 600 --out grades.csv

Each notebook (*.ipynb, in CLASS_DIR or any subfolder) runs top to bottom in a fresh kernel
on this Python, from its own folder, for at most `timeout` seconds in all. The kernel has
MINIDS_GRADE_LOG set, so every `check(...)` appends its verdict to a file, which becomes
rows of a CSV: student_file, exercise, passed (1 or 0), message. An exercise whose checker
never ran, because the notebook timed out or raised before it, gets a row that says where
the notebook stopped; a notebook that cannot be read gets one row that says so. Either
way grading goes on with the next notebook.
"""

import csv
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ipykernel.kernelspec
import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from minids.exercises import EXERCISES, GRADE_LOG

CHECK_CALL = re.compile(r'^check\(\s*"([^"]+)"', re.MULTILINE)  # a checker cell's call
COLUMNS = ["student_file", "exercise", "passed", "message"]


@dataclass(frozen=True)
class Row:
    student_file: str  # the notebook's path inside the class folder
    exercise: str  # "02.1", or "" for a notebook that could not be read
    passed: bool
    message: str


@dataclass(frozen=True)
class Graded:
    """One notebook's rows, and a note when it did not run to the end."""

    student_file: str
    rows: list[Row]
    note: str | None = None  # e.g. "the notebook stopped at cell 7 (TimeoutError after 600 s)"


class ThisPython(KernelSpecManager):
    """Every notebook runs on the Python that grades it, where minids is installed,
    whatever kernel its metadata names."""

    def get_kernel_spec(self, kernel_name):
        return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                      **ipykernel.kernelspec.get_kernel_dict())


def grade(folder, timeout: float, out, echo: Callable[[str], None] = print) -> list[Graded]:
    """Grade every notebook in folder, echo a line per notebook and per exercise, and write
    the rows to the CSV file out."""
    graded = []
    for path in student_notebooks(folder):
        graded.append(grade_notebook(path, path.relative_to(folder).as_posix(), timeout))
        echo(notebook_line(graded[-1]))
    for line in exercise_lines(graded):
        echo(line)
    write_csv([row for notebook in graded for row in notebook.rows], out)
    return graded


def student_notebooks(folder) -> list[Path]:
    """The notebooks in folder and its subfolders, without Jupyter's checkpoint copies."""
    return sorted(path for path in Path(folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in path.parts)


def grade_notebook(path: Path, name: str, timeout: float) -> Graded:
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook, not UTF-8, ...
        message = f"could not read the notebook ({type(error).__name__})"
        return Graded(name, [Row(name, "", False, message)], message)
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "verdicts.jsonl"
        note = execute(notebook, path.parent, log, timeout)
        verdicts = read_verdicts(log)
    return Graded(name, rows_of(name, CHECK_CALL.findall(source_of(notebook)), verdicts, note),
                  note)


def execute(notebook, folder: Path, log: Path, timeout: float) -> str | None:
    """Run the notebook's cells in order in a fresh kernel, with `timeout` seconds for all
    of them. None when every cell ran, else where and why the notebook stopped."""
    # At the deadline the kernel is interrupted (a KeyboardInterrupt in the running cell),
    # so that the cell ends with an error reply and the kernel shuts down cleanly.
    kernel = AsyncKernelManager(kernel_spec_manager=ThisPython())  # nbclient's async API
    client = NotebookClient(notebook, km=kernel,
                            shutdown_kernel="immediate", interrupt_on_timeout=True,
                            error_on_timeout={"ename": "TimeoutError", "evalue": "",
                                              "traceback": []},
                            resources={"metadata": {"path": str(folder)}})
    index, deadline = None, math.inf
    try:
        with client.setup_kernel(env=kernel_environment(log), cleanup_kc=True):
            deadline = time.monotonic() + timeout
            client.timeout_func = lambda cell: max(deadline - time.monotonic(), 0.01)
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
    except Exception as error:  # a cell raised or timed out, the kernel died or never started
        out_of_time = time.monotonic() >= deadline
        return stop_note(index, f"TimeoutError after {timeout:g} s" if out_of_time
                         else getattr(error, "ename", type(error).__name__))
    return None


def kernel_environment(log: Path) -> dict[str, str]:
    """This process's environment, with the verdict log, no progress bars, one thread."""
    return {**os.environ, GRADE_LOG: str(log), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def stop_note(index: int | None, reason: str) -> str:
    """reason: the exception the cell raised (CellExecutionError names it), or a time-out."""
    where = "before its first cell" if index is None else f"at cell {index + 1}"
    return f"the notebook stopped {where} ({reason})"


def read_verdicts(log: Path) -> list[dict]:
    """The verdicts check wrote, in order; a line cut short by a killed kernel is skipped."""
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    verdicts = []
    for line in lines:
        try:
            verdicts.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return verdicts


def source_of(notebook) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")


def rows_of(name: str, called: list[str], verdicts: list[dict], note: str | None) -> list[Row]:
    """A row per exercise the notebook checks (or checked): its last verdict, or why it has
    none."""
    last = {verdict["exercise"]: verdict for verdict in verdicts}
    missing = (f"not reached: {note}" if note else
               "not checked: the notebook ran to the end, but its check did not run")
    return [Row(name, exercise, bool(last[exercise]["passed"]), last[exercise]["message"])
            if exercise in last else Row(name, exercise, False, missing)
            for exercise in dict.fromkeys([*called, *last])]


def notebook_line(notebook: Graded) -> str:
    rows = [row for row in notebook.rows if row.exercise]
    line = f"{notebook.student_file}: {sum(row.passed for row in rows)}/{len(rows)} passed"
    return line + (f"; {notebook.note}" if notebook.note else "")


def exercise_lines(graded: list[Graded]) -> list[str]:
    """For each exercise: how many notebooks passed it, of those that hold it."""
    results: dict[str, list[bool]] = {}
    for row in sorted((row for notebook in graded for row in notebook.rows if row.exercise),
                      key=lambda row: row.exercise):
        results.setdefault(row.exercise, []).append(row.passed)
    return [f"{_title(exercise)}: {sum(passed)} of {len(passed)} passed"
            for exercise, passed in results.items()]


def _title(exercise_id: str) -> str:
    known = EXERCISES.get(exercise_id)
    return f"{exercise_id} {known.title}" if known else exercise_id


def write_csv(rows: list[Row], out):
    with open(out, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows([row.student_file, row.exercise, int(row.passed), row.message]
                         for row in rows)
