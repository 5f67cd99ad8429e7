"""What the book's tests share: where the chapters are, the book's configuration, the
table of contents, and how a checker cell calls its checker."""

import re
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
CHECK_CALL = re.compile(r'^check\("([0-9.]+)"', re.MULTILINE)  # a checker cell's call


def chapter_ids(paths):
    return [p.stem for p in paths]


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def toc_files() -> list[str]:
    """The pages of _toc.yml in reading order, as paths without their suffix."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files
