"""The name map (book/name-map.md) names what exists: minids' config fields and modules,
and DeepSeek-V3's values as the chapters configure it."""

import dataclasses
import re

import pytest

from minids.config import ModelConfig
from minids.exercises.common import DEEPSEEK_V3
from minids.model import MiniDeepSeek
from tests.chapters import REPO

PAGE = (REPO / "book/name-map.md").read_text()


def table(heading: str) -> list[list[str]]:
    """The rows of the first table after `## heading`, as lists of cells."""
    lines = PAGE.split(f"## {heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    rows = [line for line in lines[start:end] if not line.startswith("|---")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


CONFIG_ROWS = table("Configuration")


V3 = ModelConfig(**DEEPSEEK_V3)


@pytest.mark.parametrize("row", CONFIG_ROWS, ids=[row[0] for row in CONFIG_ROWS])
def test_each_config_field_exists_with_v3s_value(row):
    field = names(row[0])[0]
    assert field in {f.name for f in dataclasses.fields(ModelConfig)}
    assert getattr(V3, field) == float(row[2])


def test_every_v3_field_of_the_chapters_is_in_the_map():
    assert set(DEEPSEEK_V3) <= {names(row[0])[0] for row in CONFIG_ROWS}


def resolves(model, path: str, leaves: list[str]) -> bool:
    """path names a module of model, and each leaf its class, one of its parts or a sibling."""
    modules = dict(model.named_modules())
    if path not in modules:
        return False
    module, parent = modules[path], modules[path.rpartition(".")[0]]
    return all(type(module).__name__ == leaf if leaf[0].isupper()  # its class
               else hasattr(module, leaf) or hasattr(parent, leaf)  # a part, or a sibling
               for leaf in leaves)


def test_each_module_named_for_minids_exists_in_the_book_model():
    model = MiniDeepSeek(ModelConfig.preset("book"))
    rows = table("Modules and weights")
    for row in rows[1:]:  # after MiniDeepSeek itself
        path, *leaves = names(row[0])
        path = path.replace(".k", ".0")  # the first MTP module
        # a path inside a block names a dense block (0) or a MoE block (1)
        candidates = ([path.replace(".i", f".{i}") for i in (0, 1)] if ".i" in path else
                      [path] + [f"layers.{i}.{path}" for i in (0, 1)])
        assert any(resolves(model, p, leaves) for p in candidates), row[0]
    assert len(rows) >= 15
