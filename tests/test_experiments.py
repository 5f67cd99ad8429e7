"""The stored seed sweeps: each one was made by the code that defines it now."""

import dataclasses
import json

import pytest

from minids import experiments
from tests.chapters import REPO

STORED = [sweep for sweep, file in experiments.FILES.items() if (REPO / "data" / file).exists()]


@pytest.mark.parametrize("sweep", STORED)
def test_a_stored_sweep_holds_every_contender_and_seed_of_its_definition(sweep):
    record = experiments.load(sweep, REPO / "data")
    assert record["command"] == f"python -m minids.experiments {sweep}"
    as_stored = json.loads(json.dumps(dataclasses.asdict(experiments.TRAINING)))
    assert record["train_config"] == as_stored
    assert record["seeds"] == list(experiments.SEEDS)
    for name in experiments.CONTENDERS[sweep]:
        assert record["model_configs"][name] == experiments.contender_config(sweep, name).to_dict()
        for seed in experiments.SEEDS:
            run = record["runs"][name][str(seed)]
            assert len(run["train_loss"]) == experiments.TRAINING.steps
            assert run["val_loss"][-1][0] == experiments.TRAINING.steps


def test_chapter_03_reads_a_stored_sweep():
    assert "attention" in STORED


def test_a_missing_sweep_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m minids.experiments attention"):
        experiments.load("attention", tmp_path)
