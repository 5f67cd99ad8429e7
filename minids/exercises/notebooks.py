"""The chapters as files: student copies, and the setup cell every chapter starts with.

A solution sits between nbgrader's markers inside a code cell:

    def rmsnorm(x, weight, eps):
        ### BEGIN SOLUTION
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
        ### END SOLUTION

The student copy keeps the cell with the markers and everything between them replaced by
`raise NotImplementedError` (indented like the marker), and has no outputs. Writing the
copies again leaves alone a copy that a student has edited. The solution cell carries the
`hide-input` tag, so the rendered book shows it behind a toggle.
"""

import re
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN = "hide-input"  # jupyter-book (myst-nb) folds the cell's code away until clicked
STUDENT_LINK = "student-link"  # the tag of the cell that opens the chapter's student copy
# What the fold's toggle says (myst-nb reads these from the cell's "mystnb" metadata), so
# that a reader tells a solution from the setup cell before opening it.
FOLD_PROMPTS = {
    "setup": {"code_prompt_show": "Show the setup cell", "code_prompt_hide": "Hide the setup cell"},
    "solution": {"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"},
}


def has_solution(cell) -> bool:
    return cell.cell_type == "code" and BEGIN in cell.source


def strip_solution(source: str) -> str:
    """The cell's code with each solution block replaced by `raise NotImplementedError`."""
    lines, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside a solution")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(f"{indent}raise NotImplementedError")
        elif marker == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(lines)


def student_copy(notebook):
    """A copy with the solutions stripped, every output cleared, and no link to itself."""
    copy = nbformat.from_dict(notebook)
    copy.cells = [cell for cell in copy.cells if STUDENT_LINK not in cell.metadata.get("tags", [])]
    for index, cell in enumerate(copy.cells):
        if cell.cell_type != "code":
            continue
        if has_solution(cell):
            try:
                cell.source = strip_solution(cell.source)
            except ValueError as error:
                raise ValueError(f"code cell {index}: {error}") from None
        cell.outputs, cell.execution_count = [], None
    return copy


def write_student_copies(notebooks_dir="notebooks", out_dir="student",
                         force=False) -> tuple[list[Path], list[Path]]:
    """Write the student copy of every notebook in notebooks_dir into out_dir. A file there
    that differs from the copy this would write (a student's edited copy) is kept, unless
    force. Returns the paths written and the paths kept."""
    chapters = sorted(Path(notebooks_dir).glob("*.ipynb"))
    if not chapters:
        raise ValueError(f"no chapters (*.ipynb) in {notebooks_dir}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in chapters:
        data, target = student_copy_text(path).encode("utf-8"), out / path.name
        if not force and target.exists() and target.read_bytes() != data:
            kept.append(target)
            continue
        target.write_bytes(data)
        written.append(target)
    return written, kept


def student_copy_text(path: Path) -> str:
    """The student copy of the notebook at path, as nbformat.write would store it."""
    try:
        copy = student_copy(nbformat.read(path, as_version=4))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return nbformat.writes(copy) + "\n"


REPOSITORY_LINE = re.compile(r'^REPOSITORY = "[^"]*"$', re.MULTILINE)


def book_repository(root) -> dict | None:
    """The `repository:` section of the book's `_config.yml` in root (url, branch), the one
    place that names where the book is published; None without a config."""
    config = Path(root) / "_config.yml"
    if not config.exists():
        return None
    import yaml  # jupyter-book's dependency: only authors run this

    return yaml.safe_load(config.read_text())["repository"]


def read_setup_cell(path="book/setup_cell.py") -> str:
    """The setup cell's text, cloning the repository that `_config.yml` names (the book's
    root is the folder above the setup cell's), so that a fork changes one line."""
    source = Path(path).read_text().strip()
    repository = book_repository(Path(path).resolve().parents[1])
    if repository:
        source = REPOSITORY_LINE.sub(f'REPOSITORY = "{repository["url"]}"', source)
    return source


def student_link(name: str, repository: dict, exercises: bool = True) -> str:
    """The markdown that opens the student copy of chapter `name` (a file name) in Colab;
    for a page without exercises (an appendix), the copy is the page without outputs."""
    github = repository["url"].removeprefix("https://github.com/")
    url = (f"https://colab.research.google.com/github/{github}/blob/"
           f"{repository['branch']}/student/{name}")
    if not exercises:
        return (f"**Run it yourself:** [open a copy without outputs in Colab]({url}), or run "
                "`python -m minids.exercises student` for local copies.")
    return (f"**Exercises without the solutions:** [open this chapter's student copy in "
            f"Colab]({url}), or run `python -m minids.exercises student` for local copies.")


def sync_student_link(notebook, text: str) -> bool:
    """Put the student-copy link right after the title cell (once). True if it changed."""
    links = [c for c in notebook.cells if STUDENT_LINK in c.metadata.get("tags", [])]
    if len(links) == 1 and links[0].source == text and notebook.cells.index(links[0]) == 1:
        return False
    notebook.cells = [c for c in notebook.cells if all(c is not link for link in links)]
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = [STUDENT_LINK]
    notebook.cells.insert(1, cell)
    return True


def first_code_index(notebook) -> int | None:
    return next((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"), None)


def sync(notebook, setup_source: str) -> bool:
    """Make the first code cell the setup cell (replacing an older setup cell, or
    inserting it), tag the setup and solution cells hide-input and name their toggles.
    True if it changed."""
    changed = False
    index = first_code_index(notebook)
    first = None if index is None else notebook.cells[index]
    if first is None or not first.source.startswith(setup_source.splitlines()[0]):
        first = nbformat.v4.new_code_cell(setup_source)
        notebook.cells.insert(len(notebook.cells) if index is None else index, first)
        changed = True
    elif first.source != setup_source:
        first.source, first.outputs, first.execution_count = setup_source, [], None
        changed = True
    for cell in notebook.cells:
        if cell is first or has_solution(cell):
            tags = cell.metadata.setdefault("tags", [])
            if HIDDEN not in tags:
                tags.append(HIDDEN)
                changed = True
            prompts = FOLD_PROMPTS["setup" if cell is first else "solution"]
            if cell.metadata.get("mystnb") != prompts:
                cell.metadata["mystnb"] = dict(prompts)
                changed = True
    return changed


def sync_notebooks(notebooks_dir="notebooks", setup_cell="book/setup_cell.py") -> list[Path]:
    """Sync every notebook in notebooks_dir, and link each to its student copy where the
    book's config names a repository; returns the ones that changed."""
    setup_source = read_setup_cell(setup_cell)
    repository = book_repository(Path(setup_cell).resolve().parents[1])
    changed = []
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        exercises = any(has_solution(cell) for cell in notebook.cells)
        link = repository and student_link(path.name, repository, exercises)
        linked = repository and sync_student_link(notebook, link)
        if sync(notebook, setup_source) | bool(linked):
            nbformat.write(notebook, path)
            changed.append(path)
    return changed
